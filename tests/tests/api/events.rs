//! The event log over HTTP: the position every write answers with, `POST /api/events` (posting
//! domain events under the aggregates' own rules) and `GET /api/events/{type}/{id}` (reading
//! one's own stream).

use common::projections::{Position, POSITION_HEADER};
use reqwest::header::{ACCESS_CONTROL_EXPOSE_HEADERS, ORIGIN};
use reqwest::Method;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::{email_for, unique_name, unique_title, unix_now, Api, Reply, TestUser};
use uuid::Uuid;

/// The position a write answered with; panics when there is none or it does not parse.
#[track_caller]
fn position(reply: &Reply) -> Position {
    match reply.header(POSITION_HEADER).map(str::parse::<Position>) {
        Some(Ok(position)) => position,
        other => panic!("no valid {POSITION_HEADER} header ({other:?}): {reply:#?}"),
    }
}

/// Asserts `reply` names `aggregate_type`'s stream at `sequence` and returns its aggregate id.
#[track_caller]
fn at(reply: &Reply, aggregate_type: &str, sequence: u64) -> String {
    let position = position(reply);
    assert_eq!(
        (position.aggregate_type.as_str(), position.sequence),
        (aggregate_type, sequence),
        "{reply:#?}"
    );
    position.aggregate_id
}

#[tokio::test]
async fn every_write_answers_with_the_position_it_appended() {
    let api = Api::new();
    let name = tests::unique_name("positioned");
    let registered = api
        .try_register(&name, &tests::email_for(&name), "a password")
        .await;
    registered.expect(201);
    let user_id = at(&registered, "User", 1);
    let token = registered.body["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Two bio updates: the same stream, one sequence further each.
    let first = api.update_user(Some(&token), &json!({"bio": "one"})).await;
    first.expect(200);
    assert_eq!(at(&first, "User", 2), user_id);
    let second = api.update_user(Some(&token), &json!({"bio": "two"})).await;
    second.expect(200);
    assert_eq!(at(&second, "User", 3), user_id);

    let star = api.new_user("star").await;
    let followed = api.follow(&star.username, Some(&token)).await;
    followed.expect(200);
    assert_eq!(at(&followed, "User", 4), user_id);
    // Following again appends nothing: the position stays where the stream is.
    let again = api.follow(&star.username, Some(&token)).await;
    again.expect(200);
    assert_eq!(at(&again, "User", 4), user_id);
    let unfollowed = api.unfollow(&star.username, Some(&token)).await;
    unfollowed.expect(200);
    assert_eq!(at(&unfollowed, "User", 5), user_id);

    let (title, _) = unique_title("Positions");
    let created = api
        .create_article(
            Some(&token),
            &json!({"title": title, "description": "d", "body": "b"}),
        )
        .await;
    let slug = tests::slug_of(&created.expect(201)["article"]);
    let article_id = at(&created, "Article", 1);
    let edited = api
        .update_article(&slug, Some(&token), &json!({"body": "new body"}))
        .await;
    edited.expect(200);
    assert_eq!(at(&edited, "Article", 2), article_id);

    let favorite_id = format!("{article_id}:{user_id}");
    let favorited = api.favorite(&slug, Some(&token)).await;
    favorited.expect(200);
    assert_eq!(at(&favorited, "Favorite", 1), favorite_id);
    let unfavorited = api.unfavorite(&slug, Some(&token)).await;
    unfavorited.expect(200);
    assert_eq!(at(&unfavorited, "Favorite", 2), favorite_id);

    let commented = api.add_comment(&slug, Some(&token), "a comment").await;
    let comment_id = commented.expect(200)["comment"]["id"].to_string();
    assert_eq!(at(&commented, "ArticleComments", 1), article_id);
    let uncommented = api.delete_comment(&slug, &comment_id, Some(&token)).await;
    uncommented.expect(204);
    assert_eq!(at(&uncommented, "ArticleComments", 2), article_id);

    let deleted = api.delete_article(&slug, Some(&token)).await;
    deleted.expect(204);
    assert_eq!(at(&deleted, "Article", 3), article_id);
}

#[tokio::test]
async fn a_refused_write_names_no_position() {
    let api = Api::new();
    let user = api.new_user("refused").await;
    let reply = api
        .update_user(Some(&user.token), &json!({"email": "not an email"}))
        .await;
    reply.expect_error(422, "email");
    assert_eq!(reply.header(POSITION_HEADER), None, "{reply:#?}");
}

#[tokio::test]
async fn browsers_may_read_the_position() {
    let api = Api::new();
    let user = api.new_user("browser").await;
    let reply = api
        .send(
            api.request(Method::PUT, "/user", Some(&user.token))
                .header(ORIGIN, "http://app.example.test:4100")
                .json(&json!({"user": {"bio": "cross-origin"}})),
        )
        .await;
    reply.expect(200);
    position(&reply);
    let exposed = reply
        .header(ACCESS_CONTROL_EXPOSE_HEADERS.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.split(',').any(|h| h.trim() == POSITION_HEADER),
        "{reply:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /api/events
// ---------------------------------------------------------------------------------------------

/// The user id of a token the stack issued.
fn id_of(api: &Api, user: &TestUser) -> String {
    api.stack().verify(&user.token).sub
}

/// A token for a user id nobody registered (the stack's own key signs it).
fn token_for(api: &Api, user_id: &str) -> String {
    let now = unix_now();
    api.stack()
        .sign(&json!({"sub": user_id, "iat": now, "exp": now + 600}))
}

/// Now as events write it: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn timestamp() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (since.as_secs(), since.subsec_millis());
    // Days to a civil date (H. Hinnant's algorithm).
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// One event to post, with a fresh id.
fn event(event_type: &str, aggregate_type: &str, aggregate_id: &str, data: Value) -> Value {
    json!({
        "eventId": Uuid::new_v4().to_string(),
        "type": event_type,
        "version": 1,
        "aggregateType": aggregate_type,
        "aggregateId": aggregate_id,
        "data": data,
    })
}

fn profile_updated(user_id: &str, bio: &str) -> Value {
    event(
        "UserProfileUpdated",
        "User",
        user_id,
        json!({"bio": bio, "image": ""}),
    )
}

/// `POST /events` with these events (and `expectedSequence` when given).
async fn post_events(
    api: &Api,
    token: Option<&str>,
    events: &[Value],
    expected_sequence: Option<u64>,
) -> Reply {
    let mut body = json!({ "events": events });
    if let Some(expected) = expected_sequence {
        body["expectedSequence"] = json!(expected);
    }
    api.post("/events", token, &body).await
}

/// `GET /events/{aggregate_type}/{aggregate_id}?{query}`.
async fn stream(
    api: &Api,
    token: Option<&str>,
    aggregate_type: &str,
    aggregate_id: &str,
    query: &str,
) -> Reply {
    api.get(
        &format!("/events/{aggregate_type}/{aggregate_id}?{query}"),
        token,
    )
    .await
}

/// The sequences of the events of a `GET /events/...` answer, asserting a 200.
#[track_caller]
fn sequences(reply: &Reply) -> Vec<u64> {
    reply.expect(200)["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["sequence"].as_u64().expect("sequence"))
        .collect()
}

/// The data of an `ArticlePublished` for a fresh article by `author_id`: (article id, slug, data).
fn new_article_data(author_id: &str) -> (String, String, Value) {
    let article_id = Uuid::new_v4().to_string();
    let (title, slug) = unique_title("Posted article");
    let data = json!({
        "articleId": article_id,
        "authorId": author_id,
        "slug": slug,
        "title": title,
        "description": "Published by an event",
        "body": "Posted, not commanded.",
        "tagList": ["posted"],
        "createdAt": timestamp(),
    });
    (article_id, slug, data)
}

#[tokio::test]
async fn a_posted_event_is_appended_at_the_next_sequence() {
    let api = Api::new();
    let user = api.new_user("poster").await;
    let id = id_of(&api, &user);
    let posted = [profile_updated(&id, "posted bio")];
    let reply = post_events(&api, Some(&user.token), &posted, Some(1)).await;
    let events = reply.expect(201)["events"]
        .as_array()
        .expect("events")
        .clone();
    assert_eq!(events.len(), 1);
    let appended = &events[0];
    assert_eq!(appended["eventId"], posted[0]["eventId"]);
    assert_eq!(appended["aggregateType"], "User");
    assert_eq!(appended["aggregateId"], id.as_str());
    assert_eq!(appended["sequence"], 2);
    assert_eq!(appended["type"], "UserProfileUpdated");
    // Posted as version 1, upcast on the way in: stored and served as version 2.
    assert_eq!(appended["version"], 2);
    assert_eq!(appended["data"]["image"], Value::Null, "{appended}");
    assert!(tests::is_timestamp(&appended["recordedAt"]), "{appended}");
    assert_eq!(at(&reply, "User", 2), id);

    // Posted events go through the same pipeline as commanded ones.
    api.eventually_current_user(&user.token, |u| u["bio"] == "posted bio")
        .await;
    // Several events at once: consecutive sequences, the header at the last.
    let reply = post_events(
        &api,
        Some(&user.token),
        &[profile_updated(&id, "three"), profile_updated(&id, "four")],
        None,
    )
    .await;
    reply.expect(201);
    assert_eq!(at(&reply, "User", 4), id);
    let sequences: Vec<&Value> = reply.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["sequence"])
        .collect();
    assert_eq!(sequences, [&json!(3), &json!(4)]);
}

#[tokio::test]
async fn an_expected_sequence_must_be_the_aggregates_last() {
    let api = Api::new();
    let user = api.new_user("expecting").await;
    let id = id_of(&api, &user);
    for stale in [0, 2, 7] {
        let reply = post_events(
            &api,
            Some(&user.token),
            &[profile_updated(&id, "stale")],
            Some(stale),
        )
        .await;
        reply.expect_error(409, "expectedSequence");
        assert_eq!(reply.header(POSITION_HEADER), None);
    }
    assert_eq!(
        sequences(&stream(&api, Some(&user.token), "User", &id, "").await),
        [1]
    );
    let reply = post_events(
        &api,
        Some(&user.token),
        &[profile_updated(&id, "current")],
        Some(1),
    )
    .await;
    reply.expect(201);
    // A new aggregate is expected at 0.
    let (article_id, _, data) = new_article_data(&id);
    let reply = post_events(
        &api,
        Some(&user.token),
        &[event("ArticlePublished", "Article", &article_id, data)],
        Some(0),
    )
    .await;
    reply.expect(201);
    assert_eq!(at(&reply, "Article", 1), article_id);
}

#[tokio::test]
async fn only_known_types_versions_and_schemas_are_accepted() {
    let api = Api::new();
    let user = api.new_user("schema").await;
    let id = id_of(&api, &user);
    let token = Some(user.token.as_str());

    let mut unknown = profile_updated(&id, "x");
    unknown["type"] = json!("UserVanished");
    post_events(&api, token, &[unknown], None)
        .await
        .expect_error(422, "events[0].type");
    let mut of_another_aggregate = profile_updated(&id, "x");
    of_another_aggregate["type"] = json!("ArticleDeleted");
    post_events(&api, token, &[of_another_aggregate], None)
        .await
        .expect_error(422, "events[0].type");
    let mut version = profile_updated(&id, "x");
    version["version"] = json!(3);
    post_events(&api, token, &[version], None)
        .await
        .expect_error(422, "events[0].version");

    let missing = event("UserProfileUpdated", "User", &id, json!({"bio": "x"}));
    post_events(&api, token, &[missing], None)
        .await
        .expect_error(422, "events[0].data.image");
    let mistyped = event(
        "UserProfileUpdated",
        "User",
        &id,
        json!({"bio": 5, "image": ""}),
    );
    post_events(&api, token, &[mistyped], None)
        .await
        .expect_error(422, "events[0].data.bio");
    let extra = event(
        "UserProfileUpdated",
        "User",
        &id,
        json!({"bio": "x", "image": "", "admin": true}),
    );
    post_events(&api, token, &[extra], None)
        .await
        .expect_error(422, "events[0].data.admin");

    let mut envelope = profile_updated(&id, "x");
    envelope["eventId"] = json!("not-a-uuid");
    envelope["aggregateType"] = json!("Planet");
    let reply = post_events(&api, token, &[envelope], None).await;
    reply.expect_error(422, "events[0].eventId");
    reply.expect_error(422, "events[0].aggregateType");
    api.post("/events", token, &json!({"events": []}))
        .await
        .expect_error(422, "events");
    api.post(
        "/events",
        token,
        &json!({"events": [profile_updated(&id, "x")], "expectedSequence": "one"}),
    )
    .await
    .expect_error(422, "expectedSequence");

    // None of it was appended.
    assert_eq!(sequences(&stream(&api, token, "User", &id, "").await), [1]);
}

#[tokio::test]
async fn one_post_holds_the_events_of_one_aggregate() {
    let api = Api::new();
    let user = api.new_user("oneagg").await;
    let id = id_of(&api, &user);
    let (article_id, _, data) = new_article_data(&id);
    let reply = post_events(
        &api,
        Some(&user.token),
        &[
            profile_updated(&id, "x"),
            event("ArticlePublished", "Article", &article_id, data),
        ],
        None,
    )
    .await;
    reply.expect_error(422, "events");
    let reply = post_events(
        &api,
        Some(&user.token),
        &[
            profile_updated(&id, "x"),
            profile_updated(&format!("{id}x"), "y"),
        ],
        None,
    )
    .await;
    reply.expect_error(422, "events");
    assert_eq!(
        sequences(&stream(&api, Some(&user.token), "User", &id, "").await),
        [1]
    );
    stream(&api, Some(&user.token), "Article", &article_id, "")
        .await
        .expect_error(404, "aggregate");
}

/// Publishes an article through `POST /articles`; returns its id (from the position) and slug.
async fn publish(api: &Api, author: &TestUser) -> (String, String) {
    let (title, _) = unique_title("Commanded article");
    let reply = api
        .create_article(
            Some(&author.token),
            &json!({"title": title, "description": "d", "body": "b", "tagList": ["commanded"]}),
        )
        .await;
    let slug = tests::slug_of(&reply.expect(201)["article"]);
    (at(&reply, "Article", 1), slug)
}

fn favorited(article_id: &str, user_id: &str) -> Value {
    event(
        "ArticleFavorited",
        "Favorite",
        &format!("{article_id}:{user_id}"),
        json!({"articleId": article_id, "userId": user_id, "favoritedAt": timestamp()}),
    )
}

fn comment_added(article_id: &str, comment_id: u64, author_id: &str, body: &str) -> Value {
    event(
        "CommentAdded",
        "ArticleComments",
        article_id,
        json!({
            "articleId": article_id,
            "commentId": comment_id,
            "authorId": author_id,
            "body": body,
            "createdAt": timestamp(),
        }),
    )
}

#[tokio::test]
async fn posting_needs_a_token_and_acts_in_the_callers_name_only() {
    let api = Api::new();
    let alice = api.new_user("alice").await;
    let bob = api.new_user("bob").await;
    let (alice_id, bob_id) = (id_of(&api, &alice), id_of(&api, &bob));

    post_events(&api, None, &[profile_updated(&alice_id, "x")], None)
        .await
        .expect_unauthorized();
    let reply = api
        .send(
            api.request(Method::POST, "/events", Some("not.a.token"))
                .json(&json!({"events": [profile_updated(&alice_id, "x")]})),
        )
        .await;
    reply.expect_unauthorized();

    // Alice's user stream.
    post_events(
        &api,
        Some(&bob.token),
        &[profile_updated(&alice_id, "x")],
        None,
    )
    .await
    .expect_error(403, "body");
    // An article in Alice's name.
    let (new_id, _, in_alices_name) = new_article_data(&alice_id);
    post_events(
        &api,
        Some(&bob.token),
        &[event(
            "ArticlePublished",
            "Article",
            &new_id,
            in_alices_name,
        )],
        None,
    )
    .await
    .expect_error(403, "body");
    // Alice's article, deleted in Bob's name: the article knows its author.
    let (article_id, slug) = publish(&api, &alice).await;
    let deletion = event(
        "ArticleDeleted",
        "Article",
        &article_id,
        json!({"authorId": bob_id, "slug": slug, "deletedAt": timestamp()}),
    );
    post_events(&api, Some(&bob.token), &[deletion], None)
        .await
        .expect_error(403, "body");
    // Alice's favorite.
    post_events(
        &api,
        Some(&bob.token),
        &[favorited(&article_id, &alice_id)],
        None,
    )
    .await
    .expect_error(403, "body");
    // A comment by Alice, posted by Bob.
    post_events(
        &api,
        Some(&bob.token),
        &[comment_added(&article_id, 1, &alice_id, "not mine")],
        None,
    )
    .await
    .expect_error(403, "body");

    // Nothing of it was appended.
    assert_eq!(
        sequences(&stream(&api, Some(&alice.token), "Article", &article_id, "").await),
        [1]
    );
    assert_eq!(
        sequences(&stream(&api, Some(&alice.token), "User", &alice_id, "").await),
        [1]
    );
    api.eventually_article(&slug, None, |a| {
        a["author"]["username"] == alice.username.as_str()
    })
    .await;
}

#[tokio::test]
async fn the_aggregates_own_rules_refuse_what_their_state_does_not_allow() {
    let api = Api::new();
    let author = api.new_user("ruled").await;
    let reader = api.new_user("reader").await;
    let (author_id, reader_id) = (id_of(&api, &author), id_of(&api, &reader));

    // Favoriting a deleted article.
    let (gone_id, gone_slug) = publish(&api, &author).await;
    api.delete_article(&gone_slug, Some(&author.token))
        .await
        .expect(204);
    post_events(
        &api,
        Some(&reader.token),
        &[favorited(&gone_id, &reader_id)],
        None,
    )
    .await
    .expect_error(422, "events[0].data.articleId");
    stream(
        &api,
        Some(&reader.token),
        "Favorite",
        &format!("{gone_id}:{reader_id}"),
        "",
    )
    .await
    .expect_error(404, "aggregate");

    // Favoriting twice: the second changes nothing, so the whole post is refused.
    let (article_id, slug) = publish(&api, &author).await;
    post_events(
        &api,
        Some(&reader.token),
        &[
            favorited(&article_id, &reader_id),
            favorited(&article_id, &reader_id),
        ],
        None,
    )
    .await
    .expect_error(422, "events[1].type");

    // A comment number the thread does not give next.
    post_events(
        &api,
        Some(&reader.token),
        &[comment_added(&article_id, 2, &reader_id, "skipping one")],
        None,
    )
    .await
    .expect_error(422, "events[0].data.commentId");

    // Deleting someone else's comment in one's own name.
    let comment = api
        .add_comment(&slug, Some(&author.token), "author's")
        .await;
    let comment_id = comment.expect(200)["comment"]["id"].as_u64().expect("id");
    let deletion = event(
        "CommentDeleted",
        "ArticleComments",
        &article_id,
        json!({"articleId": article_id, "commentId": comment_id, "authorId": reader_id, "deletedAt": timestamp()}),
    );
    post_events(&api, Some(&reader.token), &[deletion], None)
        .await
        .expect_error(403, "body");

    // An edit that does not carry the article as it is (the slug it had).
    let edit = event(
        "ArticleEdited",
        "Article",
        &article_id,
        json!({
            "slug": slug, "previousSlug": "not-its-slug", "authorId": author_id,
            "title": "t", "description": "d", "body": "b", "tagList": ["commanded"],
            "createdAt": timestamp(), "updatedAt": timestamp(),
        }),
    );
    post_events(&api, Some(&author.token), &[edit], None)
        .await
        .expect_error(422, "events[0].data.previousSlug");

    assert_eq!(
        sequences(
            &stream(
                &api,
                Some(&author.token),
                "ArticleComments",
                &article_id,
                ""
            )
            .await
        ),
        [1]
    );
    assert_eq!(
        sequences(&stream(&api, Some(&author.token), "Article", &article_id, "").await),
        [1]
    );
}

#[tokio::test]
async fn a_registration_by_event_claims_email_and_username_and_sets_no_password() {
    let api = Api::new();
    let taken = api.new_user("taken").await;
    let id = Uuid::new_v4().to_string();
    let token = token_for(&api, &id);
    let name = unique_name("byevent");
    let registration = |email: &str, username: &str| {
        event(
            "UserRegistered",
            "User",
            &id,
            json!({"userId": id, "email": email, "username": username}),
        )
    };

    post_events(
        &api,
        Some(&token),
        &[registration(&taken.email, &name)],
        Some(0),
    )
    .await
    .expect_error(409, "events[0].data.email");
    post_events(
        &api,
        Some(&token),
        &[registration(&email_for(&name), &taken.username)],
        Some(0),
    )
    .await
    .expect_error(409, "events[0].data.username");
    let mut with_hash = registration(&email_for(&name), &name);
    with_hash["data"]["passwordHash"] =
        json!("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    post_events(&api, Some(&token), &[with_hash], Some(0))
        .await
        .expect_error(422, "events[0].data.passwordHash");
    // Registering someone else.
    let other = Uuid::new_v4().to_string();
    post_events(
        &api,
        Some(&token),
        &[event(
            "UserRegistered",
            "User",
            &other,
            json!({"userId": other, "email": email_for(&name), "username": name}),
        )],
        None,
    )
    .await
    .expect_error(403, "body");

    let reply = post_events(
        &api,
        Some(&token),
        &[registration(&email_for(&name), &name)],
        Some(0),
    )
    .await;
    reply.expect(201);
    assert_eq!(at(&reply, "User", 1), id);
    api.eventually_profile(&name, None, |p| p["username"] == name.as_str())
        .await;
    // The email is taken now, for commands too.
    api.try_register(&unique_name("late"), &email_for(&name), "a password")
        .await
        .expect_error(422, "email");
    // A second registration of the same user.
    post_events(
        &api,
        Some(&token),
        &[registration(
            &email_for(&unique_name("again")),
            &unique_name("again"),
        )],
        None,
    )
    .await
    .expect_error(409, "events[0].aggregateId");
    // Registered without a password: no password logs in.
    api.login(&email_for(&name), "").await.expect(422);
    api.login(&email_for(&name), "anything")
        .await
        .expect_error(401, "email or password");
}

#[tokio::test]
async fn an_event_id_is_appended_once() {
    let api = Api::new();
    let user = api.new_user("idempotent").await;
    let id = id_of(&api, &user);
    let token = Some(user.token.as_str());
    let posted = [profile_updated(&id, "once"), profile_updated(&id, "twice")];

    let first = post_events(&api, token, &posted, Some(1)).await;
    first.expect(201);
    // The same post again, even with a now stale expected sequence: the original answer.
    let again = post_events(&api, token, &posted, Some(1)).await;
    assert_eq!(again.expect(200), &first.body);
    assert_eq!(again.header(POSITION_HEADER), first.header(POSITION_HEADER));
    let without = post_events(&api, token, &posted, None).await;
    assert_eq!(without.expect(200), &first.body);
    assert_eq!(
        sequences(&stream(&api, token, "User", &id, "").await),
        [1, 2, 3]
    );

    // The same id with other content.
    let mut changed = posted[1].clone();
    changed["data"]["bio"] = json!("changed");
    post_events(&api, token, &[changed], None)
        .await
        .expect_error(409, "events[0].eventId");
    // The same id on another aggregate.
    let (article_id, _, mut data) = new_article_data(&id);
    let mut moved = event("ArticlePublished", "Article", &article_id, data.take());
    moved["eventId"] = posted[0]["eventId"].clone();
    post_events(&api, token, &[moved], None)
        .await
        .expect_error(409, "events[0].eventId");
    // Old and new events in one post.
    let reply = post_events(
        &api,
        token,
        &[posted[0].clone(), profile_updated(&id, "new")],
        None,
    )
    .await;
    reply.expect_error(409, "events[0].eventId");
    reply.expect_error(409, "events");
    assert_eq!(
        sequences(&stream(&api, token, "User", &id, "").await),
        [1, 2, 3]
    );

    // Someone else replaying it is still someone else.
    let other = api.new_user("replayer").await;
    post_events(&api, Some(&other.token), &posted, None)
        .await
        .expect_error(403, "body");
}

#[tokio::test]
async fn concurrent_posts_of_one_event_append_it_once() {
    let api = Api::new();
    let user = api.new_user("racer").await;
    let id = id_of(&api, &user);
    let token = Some(user.token.as_str());
    for round in 0..3_u64 {
        // The same post four times at once: appended once, every answer names it.
        let posted = [profile_updated(&id, &format!("raced {round}"))];
        let replies =
            futures::future::join_all((0..4).map(|_| post_events(&api, token, &posted, None)))
                .await;
        for reply in &replies {
            assert!(matches!(reply.status.as_u16(), 200 | 201), "{reply:#?}");
            assert_eq!(reply.body["events"][0]["sequence"], 2 + round, "{reply:#?}");
        }
        assert!(replies.iter().any(|r| r.status.as_u16() == 201));
    }
    // One event id, four contents at once: one of them is appended, the others refused.
    let event_id = Uuid::new_v4().to_string();
    let api = &api;
    let replies = futures::future::join_all((0..4).map(|i| {
        let mut posted = profile_updated(&id, &format!("contended {i}"));
        posted["eventId"] = json!(event_id);
        async move { post_events(api, token, &[posted], None).await }
    }))
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{replies:#?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{replies:#?}"
    );
    assert_eq!(
        sequences(&stream(api, token, "User", &id, "").await),
        [1, 2, 3, 4, 5]
    );
}

#[tokio::test]
async fn posted_events_show_up_in_the_realworld_reads() {
    let api = Api::new();
    let author = api.new_user("eventauthor").await;
    let reader = api.new_user("eventreader").await;
    let (author_id, reader_id) = (id_of(&api, &author), id_of(&api, &reader));

    let (article_id, slug, data) = new_article_data(&author_id);
    let reply = post_events(
        &api,
        Some(&author.token),
        &[event(
            "ArticlePublished",
            "Article",
            &article_id,
            data.clone(),
        )],
        Some(0),
    )
    .await;
    reply.expect(201);
    let shown = api
        .eventually_article(&slug, None, |a| a["title"] == data["title"])
        .await;
    assert_eq!(shown["author"]["username"], author.username.as_str());
    assert_eq!(shown["tagList"], json!(["posted"]));
    assert_eq!(shown["createdAt"], data["createdAt"]);

    let edited_at = timestamp();
    let edit = event(
        "ArticleEdited",
        "Article",
        &article_id,
        json!({
            "slug": slug, "previousSlug": slug, "authorId": author_id,
            "title": data["title"], "description": data["description"],
            "body": "Edited by an event.", "tagList": ["posted"],
            "createdAt": data["createdAt"], "updatedAt": edited_at,
        }),
    );
    post_events(&api, Some(&author.token), &[edit], Some(1))
        .await
        .expect(201);
    api.eventually_article(&slug, None, |a| {
        a["body"] == "Edited by an event." && a["updatedAt"] == edited_at.as_str()
    })
    .await;

    let reply = post_events(
        &api,
        Some(&reader.token),
        &[comment_added(
            &article_id,
            1,
            &reader_id,
            "A posted comment",
        )],
        Some(0),
    )
    .await;
    reply.expect(201);
    assert_eq!(at(&reply, "ArticleComments", 1), article_id);
    let comments = api.eventually_comments(&slug, None, |c| c.len() == 1).await;
    assert_eq!(comments[0]["id"], 1);
    assert_eq!(comments[0]["body"], "A posted comment");
    assert_eq!(comments[0]["author"]["username"], reader.username.as_str());
    // A comment by command after it gets the next number.
    let next = api
        .add_comment(&slug, Some(&author.token), "by command")
        .await;
    assert_eq!(next.expect(200)["comment"]["id"], 2);

    post_events(
        &api,
        Some(&reader.token),
        &[favorited(&article_id, &reader_id)],
        Some(0),
    )
    .await
    .expect(201);
    api.eventually_article(&slug, Some(&reader.token), |a| {
        a["favorited"] == true && a["favoritesCount"] == 1
    })
    .await;
    // The command side sees the posted favorite too: favoriting again changes nothing.
    let again = api.favorite(&slug, Some(&reader.token)).await;
    assert_eq!(again.expect(200)["article"]["favoritesCount"], 1);
    assert_eq!(
        at(&again, "Favorite", 1),
        format!("{article_id}:{reader_id}")
    );
}

// ---------------------------------------------------------------------------------------------
// GET /api/events/{aggregateType}/{aggregateId}
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_owner_pages_through_their_stream() {
    let api = Api::new();
    let user = api.new_user("pager").await;
    let id = id_of(&api, &user);
    let token = Some(user.token.as_str());
    for i in 0..4 {
        api.update_user(token, &json!({"bio": format!("bio {i}")}))
            .await
            .expect(200);
    }
    let all = stream(&api, token, "User", &id, "").await;
    assert_eq!(sequences(&all), [1, 2, 3, 4, 5]);
    assert_eq!(all.body["nextFrom"], Value::Null);
    let first = &all.body["events"][0];
    assert_eq!(first["type"], "UserRegistered");
    assert_eq!(first["aggregateType"], "User");
    assert_eq!(first["aggregateId"], id.as_str());
    assert_eq!(first["version"], 1);
    assert_eq!(first["data"]["username"], user.username.as_str());
    assert_eq!(first["metadata"]["actor"], id.as_str());
    assert!(tests::is_timestamp(&first["recordedAt"]));
    assert!(first["eventId"]
        .as_str()
        .is_some_and(|e| Uuid::parse_str(e).is_ok()));

    let page = stream(&api, token, "User", &id, "from=2&limit=2").await;
    assert_eq!(sequences(&page), [2, 3]);
    assert_eq!(page.body["nextFrom"], 4);
    let page = stream(&api, token, "User", &id, "from=4&limit=2").await;
    assert_eq!(sequences(&page), [4, 5]);
    assert_eq!(page.body["nextFrom"], Value::Null);
    let past = stream(&api, token, "User", &id, "from=9").await;
    assert_eq!(sequences(&past), Vec::<u64>::new());
    assert_eq!(past.body["nextFrom"], Value::Null);

    for (query, field) in [
        ("from=0", "from"),
        ("from=x", "from"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ] {
        stream(&api, token, "User", &id, query)
            .await
            .expect_error(422, field);
    }
}

#[tokio::test]
async fn a_stream_is_its_owners_only() {
    let api = Api::new();
    let alice = api.new_user("owner").await;
    let bob = api.new_user("stranger").await;
    let (alice_id, bob_id) = (id_of(&api, &alice), id_of(&api, &bob));
    let (article_id, slug) = publish(&api, &alice).await;
    api.favorite(&slug, Some(&bob.token)).await.expect(200);
    api.add_comment(&slug, Some(&bob.token), "hello")
        .await
        .expect(200);
    let favorite = format!("{article_id}:{bob_id}");

    stream(&api, None, "User", &alice_id, "")
        .await
        .expect_unauthorized();
    let streams = [
        ("User", alice_id.as_str(), &alice, &bob),
        ("Article", article_id.as_str(), &alice, &bob),
        // A comment thread is its article's author's.
        ("ArticleComments", article_id.as_str(), &alice, &bob),
        ("Favorite", favorite.as_str(), &bob, &alice),
    ];
    for (kind, id, owner, other) in streams {
        let own = stream(&api, Some(&owner.token), kind, id, "").await;
        assert!(!sequences(&own).is_empty(), "{kind}: {own:#?}");
        stream(&api, Some(&other.token), kind, id, "")
            .await
            .expect_error(403, "body");
    }
    // Someone else's user stream is refused whether or not it exists.
    stream(
        &api,
        Some(&bob.token),
        "User",
        &Uuid::new_v4().to_string(),
        "",
    )
    .await
    .expect_error(403, "body");
    for (kind, id) in [
        ("Article", Uuid::new_v4().to_string()),
        ("Planet", article_id.clone()),
        ("Article", "not an id".to_owned()),
    ] {
        stream(&api, Some(&alice.token), kind, &id, "")
            .await
            .expect_error(404, "aggregate");
    }
}

#[tokio::test]
async fn no_secret_leaves_with_a_stream() {
    let api = Api::new();
    let user = api.new_user("secretive").await;
    let id = id_of(&api, &user);
    api.update_user(Some(&user.token), &json!({"password": "another password"}))
        .await
        .expect(200);
    let reply = stream(&api, Some(&user.token), "User", &id, "").await;
    let types: Vec<&Value> = reply.expect(200)["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["type"])
        .collect();
    assert_eq!(
        types,
        [&json!("UserRegistered"), &json!("UserPasswordChanged")]
    );
    let text = reply.body.to_string();
    assert!(
        !text.contains("passwordHash") && !text.contains("argon2"),
        "{text}"
    );
}
