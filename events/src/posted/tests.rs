use serde_json::json;

use super::*;
use crate::article::{Article, ArticleEvent};
use crate::comment::{ArticleComments, CommentEvent};
use crate::favorite::{Favorite, FavoriteEvent};
use crate::user::{User, UserEvent};

const AT: &str = "2024-01-01T00:00:00.000Z";
const LATER: &str = "2024-01-02T03:04:05.678Z";
const ID: &str = "0b6c5d2e-1111-4222-8333-944445555666";

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

fn followed(followee: &str) -> Value {
    event(
        "UserFollowed",
        "User",
        "u1",
        json!({"followeeId": followee}),
    )
}

fn fields_of(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

#[track_caller]
fn parse_err(body: Value) -> Vec<Problem> {
    match RawPost::parse(&body) {
        Err(problems) => problems,
        Ok(post) => panic!("expected problems, got {post:?}"),
    }
}

#[test]
fn a_post_reads_its_envelope() {
    let body = json!({"events": [followed("u2"), followed("u3")], "expectedSequence": 4});
    let post = RawPost::parse(&body).expect("valid");
    assert_eq!(post.kind, AggregateKind::User);
    assert_eq!(post.aggregate_id, "u1");
    assert_eq!(post.expected_sequence, Some(4));
    assert_eq!(post.events.len(), 2);
    assert_eq!(post.events[0].event_type, "UserFollowed");
    assert_eq!(post.events[0].content_hash.len(), 64);
    let post = RawPost::parse(&json!({"events": [followed("u2")], "expectedSequence": null}))
        .expect("valid");
    assert_eq!(post.expected_sequence, None);
}

#[test]
fn every_bad_envelope_field_is_named() {
    let problems = parse_err(json!({
        "events": [
            {"eventId": "nope", "type": "", "version": 0, "aggregateType": "Planet", "aggregateId": "a b", "data": []},
            {},
            "text",
        ],
        "expectedSequence": -1,
    }));
    assert_eq!(
        fields_of(&problems),
        vec![
            "expectedSequence",
            "events[0].eventId",
            "events[0].type",
            "events[0].version",
            "events[0].aggregateType",
            "events[0].aggregateId",
            "events[0].data",
            "events[1].eventId",
            "events[1].type",
            "events[1].version",
            "events[1].aggregateType",
            "events[1].aggregateId",
            "events[1].data",
            "events[2].event",
        ]
    );
    assert!(problems.iter().all(|p| !p.message.is_empty()));
}

#[test]
fn the_list_of_events_is_bounded() {
    assert_eq!(fields_of(&parse_err(json!({}))), vec!["events"]);
    assert_eq!(fields_of(&parse_err(json!({"events": []}))), vec!["events"]);
    assert_eq!(fields_of(&parse_err(json!({"events": {}}))), vec!["events"]);
    assert_eq!(fields_of(&parse_err(json!([followed("u2")]))), vec!["body"]);
    let many: Vec<Value> = (0..=MAX_EVENTS_PER_POST).map(|_| followed("u2")).collect();
    assert_eq!(
        fields_of(&parse_err(json!({ "events": many }))),
        vec!["events"]
    );
    let enough: Vec<Value> = (0..MAX_EVENTS_PER_POST).map(|_| followed("u2")).collect();
    assert!(RawPost::parse(&json!({ "events": enough })).is_ok());
}

#[test]
fn one_post_is_one_aggregate_and_each_id_once() {
    let other_user = event("UserFollowed", "User", "u9", json!({"followeeId": "u2"}));
    let problems = parse_err(json!({"events": [followed("u2"), other_user]}));
    assert_eq!(fields_of(&problems), vec!["events"]);
    let other_type = event("ArticleDeleted", "Article", "u1", json!({}));
    let problems = parse_err(json!({"events": [followed("u2"), other_type]}));
    assert_eq!(fields_of(&problems), vec!["events"]);

    let twice = followed("u2");
    let problems = parse_err(json!({"events": [twice.clone(), followed("u3"), twice]}));
    assert_eq!(fields_of(&problems), vec!["events[2].eventId"]);
}

#[test]
fn the_content_hash_ignores_key_order_but_not_content() {
    let id = Uuid::new_v4();
    let a = content_hash(
        AggregateKind::User,
        "u1",
        &id,
        "T",
        1,
        &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
    );
    let b = content_hash(
        AggregateKind::User,
        "u1",
        &id,
        "T",
        1,
        &json!({"b": [{"y": 2, "x": 1}], "a": 1}),
    );
    assert_eq!(a, b);
    for other in [
        content_hash(
            AggregateKind::User,
            "u1",
            &id,
            "T",
            1,
            &json!({"a": 2, "b": [{"x": 1, "y": 2}]}),
        ),
        content_hash(
            AggregateKind::User,
            "u2",
            &id,
            "T",
            1,
            &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
        ),
        content_hash(
            AggregateKind::Article,
            "u1",
            &id,
            "T",
            1,
            &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
        ),
        content_hash(
            AggregateKind::User,
            "u1",
            &Uuid::new_v4(),
            "T",
            1,
            &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
        ),
        content_hash(
            AggregateKind::User,
            "u1",
            &id,
            "T",
            2,
            &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
        ),
    ] {
        assert_ne!(a, other);
    }
}

#[track_caller]
fn typed_err<E: EventSchema + std::fmt::Debug>(
    kind: &str,
    id: &str,
    event_type: &str,
    version: u32,
    data: Value,
) -> Vec<Problem> {
    let mut posted = event(event_type, kind, id, data);
    posted["version"] = json!(version);
    let raw = RawPost::parse(&json!({ "events": [posted] })).expect("envelope");
    match raw.typed::<E>() {
        Err(problems) => problems,
        Ok(post) => panic!("expected problems, got {post:?}"),
    }
}

#[test]
fn types_versions_and_data_are_checked_against_the_schema() {
    let problems = typed_err::<UserEvent>("User", "u1", "UserVanished", 1, json!({}));
    assert_eq!(fields_of(&problems), vec!["events[0].type"]);
    // A type of another aggregate is unknown here.
    let problems = typed_err::<UserEvent>("User", "u1", "ArticleDeleted", 1, json!({}));
    assert_eq!(fields_of(&problems), vec!["events[0].type"]);
    let problems =
        typed_err::<UserEvent>("User", "u1", "UserFollowed", 2, json!({"followeeId": "u2"}));
    assert_eq!(fields_of(&problems), vec!["events[0].version"]);
    let problems = typed_err::<UserEvent>("User", "u1", "UserFollowed", 1, json!({}));
    assert_eq!(fields_of(&problems), vec!["events[0].data.followeeId"]);
    let problems =
        typed_err::<UserEvent>("User", "u1", "UserFollowed", 1, json!({"followeeId": 7}));
    assert_eq!(fields_of(&problems), vec!["events[0].data.followeeId"]);
    let problems = typed_err::<ArticleEvent>(
        "Article",
        "a1",
        "ArticleDeleted",
        1,
        json!({"authorId": "u1", "slug": "s", "deletedAt": AT, "reason": "typo"}),
    );
    assert_eq!(fields_of(&problems), vec!["events[0].data.reason"]);
    let mut published = published_data("a1", "u1", "s");
    published["tagList"] = json!(["ok", 5]);
    let problems = typed_err::<ArticleEvent>("Article", "a1", "ArticlePublished", 1, published);
    assert_eq!(fields_of(&problems), vec!["events[0].data.tagList[1]"]);
}

fn published_data(article_id: &str, author_id: &str, slug: &str) -> Value {
    json!({
        "articleId": article_id,
        "authorId": author_id,
        "slug": slug,
        "title": "How to train your dragon",
        "description": "Ever wonder how?",
        "body": "You have to believe",
        "tagList": ["dragons", "training"],
        "createdAt": AT,
    })
}

fn read<E: EventSchema>(event_type: &str, data: Value) -> E {
    match E::from_stored(event_type, 1, &data) {
        Ok(event) => event,
        Err(e) => panic!("{event_type} {data}: {e}"),
    }
}

/// Authorizes and checks `events` (in order) on the state `given` folds to.
async fn post<A: Postable>(
    given: Vec<A::Event>,
    id: &str,
    events: Vec<A::Event>,
    actor: &str,
    facts: &Facts,
) -> Result<A, (usize, Refusal)> {
    for (index, event) in events.iter().enumerate() {
        A::authorize(id, event, actor).map_err(|r| (index, r))?;
    }
    let mut state = A::default();
    for event in given {
        state.apply(event);
    }
    check(state, &events, actor, facts).await
}

fn registered(id: &str) -> UserEvent {
    read(
        "UserRegistered",
        json!({"userId": id, "email": format!("{id}@x.io"), "username": id}),
    )
}

fn facts(list: &[(Fact, bool)]) -> Facts {
    list.iter().cloned().collect()
}

#[track_caller]
fn refused<A: std::fmt::Debug>(result: Result<A, (usize, Refusal)>) -> (usize, Refusal) {
    match result {
        Err(refused) => refused,
        Ok(state) => panic!("expected a refusal, got {state:?}"),
    }
}

#[track_caller]
fn invalid_fields(refusal: &Refusal) -> Vec<&str> {
    match refusal {
        Refusal::Invalid(problems) => fields_of(problems),
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_registers_and_follows_in_their_own_name_only() {
    let none = Facts::default();
    let state: User = post(vec![], "u1", vec![registered("u1")], "u1", &none)
        .await
        .expect("own registration");
    assert!(state.is_registered());
    assert_eq!(state.password_hash, "");

    let (_, refusal) =
        refused(post::<User>(vec![], "u1", vec![registered("u1")], "u2", &none).await);
    assert_eq!(refusal, Refusal::Forbidden);
    let (_, refusal) = refused(
        post::<User>(
            vec![registered("u1")],
            "u1",
            vec![registered("u1")],
            "u1",
            &none,
        )
        .await,
    );
    assert!(matches!(refusal, Refusal::Exists(_)), "{refusal:?}");

    let with_hash = read(
        "UserRegistered",
        json!({"userId": "u1", "email": "a@x.io", "username": "a", "passwordHash": "$argon2id$..."}),
    );
    let (_, refusal) = refused(post::<User>(vec![], "u1", vec![with_hash], "u1", &none).await);
    assert_eq!(invalid_fields(&refusal), vec!["data.passwordHash"]);
    let password = read("UserPasswordChanged", json!({"passwordHash": "h"}));
    let (_, refusal) =
        refused(post::<User>(vec![registered("u1")], "u1", vec![password], "u1", &none).await);
    assert_eq!(invalid_fields(&refusal), vec!["type"]);
    let shouting = read(
        "UserRegistered",
        json!({"userId": "u1", "email": "A@X.IO", "username": "a"}),
    );
    let (_, refusal) = refused(post::<User>(vec![], "u1", vec![shouting], "u1", &none).await);
    match &refusal {
        Refusal::Invalid(problems) => {
            assert_eq!(fields_of(problems), vec!["data.email"]);
            assert!(problems[0].message.contains("\"a@x.io\""), "{problems:?}");
        }
        other => panic!("{other:?}"),
    }

    let follow = read::<UserEvent>("UserFollowed", json!({"followeeId": "u2"}));
    let known = facts(&[(Fact::UserRegistered("u2".into()), true)]);
    let state: User = post(
        vec![registered("u1")],
        "u1",
        vec![follow.clone()],
        "u1",
        &known,
    )
    .await
    .expect("follow");
    assert!(state.following.contains("u2"));
    // The second of two follows changes nothing: refused, like the whole post.
    let (index, refusal) = refused(
        post::<User>(
            vec![registered("u1")],
            "u1",
            vec![follow.clone(), follow.clone()],
            "u1",
            &known,
        )
        .await,
    );
    assert_eq!((index, invalid_fields(&refusal)), (1, vec!["type"]));
    let unknown = facts(&[(Fact::UserRegistered("u2".into()), false)]);
    let (_, refusal) =
        refused(post::<User>(vec![registered("u1")], "u1", vec![follow], "u1", &unknown).await);
    assert_eq!(invalid_fields(&refusal), vec!["data.followeeId"]);
    assert_eq!(
        User::needs(&read("UserFollowed", json!({"followeeId": "u2"})), "u1"),
        vec![Fact::UserRegistered("u2".into())]
    );
}

#[tokio::test]
async fn an_email_change_must_name_the_previous_email() {
    let none = Facts::default();
    let wrong = read::<UserEvent>(
        "UserEmailChanged",
        json!({"email": "new@x.io", "previousEmail": "old@x.io"}),
    );
    let (_, refusal) =
        refused(post::<User>(vec![registered("u1")], "u1", vec![wrong], "u1", &none).await);
    assert_eq!(invalid_fields(&refusal), vec!["data.previousEmail"]);
    let right = read::<UserEvent>(
        "UserEmailChanged",
        json!({"email": "new@x.io", "previousEmail": "u1@x.io"}),
    );
    let state: User = post(
        vec![registered("u1")],
        "u1",
        vec![right.clone()],
        "u1",
        &none,
    )
    .await
    .expect("valid");
    assert_eq!(state.email, "new@x.io");
    assert_eq!(
        right.unique_changes().len(),
        2,
        "a posted email change moves its claim like a command's"
    );
}

#[tokio::test]
async fn articles_are_published_edited_and_deleted_by_their_author() {
    let author = facts(&[(Fact::UserRegistered("u1".into()), true)]);
    let published: ArticleEvent = read("ArticlePublished", published_data("a1", "u1", "dragons"));
    let state: Article = post(vec![], "a1", vec![published.clone()], "u1", &author)
        .await
        .expect("publish");
    assert!(state.is_live());

    let (_, refusal) =
        refused(post::<Article>(vec![], "a1", vec![published.clone()], "u2", &author).await);
    assert_eq!(refusal, Refusal::Forbidden);
    let unregistered = facts(&[(Fact::UserRegistered("u1".into()), false)]);
    let (_, refusal) =
        refused(post::<Article>(vec![], "a1", vec![published.clone()], "u1", &unregistered).await);
    assert_eq!(refusal, Refusal::Forbidden);
    let (_, refusal) = refused(
        post::<Article>(
            vec![published.clone()],
            "a1",
            vec![published.clone()],
            "u1",
            &author,
        )
        .await,
    );
    assert!(matches!(refusal, Refusal::Exists(_)));
    let mut bad = published_data("a1", "u1", "Feed");
    bad["title"] = json!("  ");
    bad["createdAt"] = json!("2024-01-01T00:00:00Z");
    let (_, refusal) = refused(
        post::<Article>(
            vec![],
            "a1",
            vec![read("ArticlePublished", bad)],
            "u1",
            &author,
        )
        .await,
    );
    assert_eq!(
        invalid_fields(&refusal),
        vec!["data.slug", "data.createdAt", "data.title"]
    );
    let (_, refusal) = refused(
        post::<Article>(
            vec![],
            "a 1",
            vec![read("ArticlePublished", published_data("a 1", "u1", "s"))],
            "u1",
            &author,
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["aggregateId"]);
    let unsorted = {
        let mut data = published_data("a1", "u1", "dragons");
        data["tagList"] = json!(["training", "dragons"]);
        read::<ArticleEvent>("ArticlePublished", data)
    };
    let (_, refusal) = refused(post::<Article>(vec![], "a1", vec![unsorted], "u1", &author).await);
    assert_eq!(invalid_fields(&refusal), vec!["data.tagList"]);

    let edited = |previous: &str| -> ArticleEvent {
        read(
            "ArticleEdited",
            json!({
                "slug": "dragons-2", "previousSlug": previous, "authorId": "u1",
                "title": "How to train your dragon 2", "description": "Ever wonder how?",
                "body": "You have to believe", "tagList": ["dragons", "training"],
                "createdAt": AT, "updatedAt": LATER,
            }),
        )
    };
    let state: Article = post(
        vec![published.clone()],
        "a1",
        vec![edited("dragons")],
        "u1",
        &author,
    )
    .await
    .expect("edit");
    assert_eq!(state.slug, "dragons-2");
    let (_, refusal) = refused(
        post::<Article>(
            vec![published.clone()],
            "a1",
            vec![edited("other")],
            "u1",
            &author,
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["data.previousSlug"]);

    let deleted: ArticleEvent = read(
        "ArticleDeleted",
        json!({"authorId": "u1", "slug": "dragons", "deletedAt": LATER}),
    );
    post::<Article>(
        vec![published.clone()],
        "a1",
        vec![deleted.clone()],
        "u1",
        &author,
    )
    .await
    .expect("delete");
    let (_, refusal) = refused(
        post::<Article>(
            vec![published.clone(), deleted.clone()],
            "a1",
            vec![deleted.clone()],
            "u1",
            &author,
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["aggregateId"]);
    // Someone else's article, in their own name: the aggregate says it is not theirs.
    let by_other: ArticleEvent = read(
        "ArticleDeleted",
        json!({"authorId": "u2", "slug": "dragons", "deletedAt": LATER}),
    );
    let (_, refusal) =
        refused(post::<Article>(vec![published], "a1", vec![by_other], "u2", &author).await);
    assert_eq!(refusal, Refusal::Forbidden);
}

fn comment(event_type: &str, id: u64, author: &str) -> CommentEvent {
    let at = if event_type == "CommentAdded" {
        "createdAt"
    } else {
        "deletedAt"
    };
    let mut data = json!({"articleId": "a1", "commentId": id, "authorId": author, at: AT});
    if event_type == "CommentAdded" {
        data["body"] = json!("It takes a Jacobian");
    }
    read(event_type, data)
}

#[tokio::test]
async fn comments_are_numbered_by_their_thread_and_removed_by_their_author() {
    let live = |author: &str| {
        facts(&[
            (Fact::UserRegistered(author.into()), true),
            (Fact::ArticleLive("a1".into()), true),
        ])
    };
    let state: ArticleComments = post(
        vec![],
        "a1",
        vec![comment("CommentAdded", 1, "u1")],
        "u1",
        &live("u1"),
    )
    .await
    .expect("first comment");
    assert_eq!(state.next_id, 2);
    let (_, refusal) = refused(
        post::<ArticleComments>(
            vec![comment("CommentAdded", 1, "u2")],
            "a1",
            vec![comment("CommentAdded", 1, "u1")],
            "u1",
            &live("u1"),
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["data.commentId"]);
    let (_, refusal) = refused(
        post::<ArticleComments>(
            vec![],
            "a1",
            vec![comment("CommentAdded", 1, "u2")],
            "u1",
            &live("u1"),
        )
        .await,
    );
    assert_eq!(refusal, Refusal::Forbidden);
    let gone = facts(&[
        (Fact::UserRegistered("u1".into()), true),
        (Fact::ArticleLive("a1".into()), false),
    ]);
    let (_, refusal) = refused(
        post::<ArticleComments>(
            vec![],
            "a1",
            vec![comment("CommentAdded", 1, "u1")],
            "u1",
            &gone,
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["data.articleId"]);
    let (_, refusal) = refused(
        post::<ArticleComments>(
            vec![],
            "a2",
            vec![comment("CommentAdded", 1, "u1")],
            "u1",
            &live("u1"),
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["data.articleId"]);

    let thread = vec![comment("CommentAdded", 1, "u2")];
    // u1 deleting u2's comment in their own name: the thread knows whose it is.
    let (_, refusal) = refused(
        post::<ArticleComments>(
            thread.clone(),
            "a1",
            vec![comment("CommentDeleted", 1, "u1")],
            "u1",
            &Facts::default(),
        )
        .await,
    );
    assert_eq!(refusal, Refusal::Forbidden);
    post::<ArticleComments>(
        thread.clone(),
        "a1",
        vec![comment("CommentDeleted", 1, "u2")],
        "u2",
        &Facts::default(),
    )
    .await
    .expect("own comment");
    let (_, refusal) = refused(
        post::<ArticleComments>(
            thread,
            "a1",
            vec![comment("CommentDeleted", 2, "u2")],
            "u2",
            &Facts::default(),
        )
        .await,
    );
    assert_eq!(invalid_fields(&refusal), vec!["data.commentId"]);
}

#[tokio::test]
async fn favorites_alternate_on_live_articles_in_their_users_name() {
    let favorited: FavoriteEvent = read(
        "ArticleFavorited",
        json!({"articleId": "a1", "userId": "u1", "favoritedAt": AT}),
    );
    let unfavorited: FavoriteEvent = read(
        "ArticleUnfavorited",
        json!({"articleId": "a1", "userId": "u1", "unfavoritedAt": LATER}),
    );
    let live = facts(&[
        (Fact::UserRegistered("u1".into()), true),
        (Fact::ArticleLive("a1".into()), true),
    ]);
    let state: Favorite = post(
        vec![],
        "a1:u1",
        vec![favorited.clone(), unfavorited.clone(), favorited.clone()],
        "u1",
        &live,
    )
    .await
    .expect("alternating");
    assert!(state.favorited);
    let (index, refusal) = refused(
        post::<Favorite>(
            vec![],
            "a1:u1",
            vec![favorited.clone(), favorited.clone()],
            "u1",
            &live,
        )
        .await,
    );
    assert_eq!((index, invalid_fields(&refusal)), (1, vec!["type"]));
    let (_, refusal) =
        refused(post::<Favorite>(vec![], "a1:u1", vec![unfavorited], "u1", &live).await);
    assert_eq!(invalid_fields(&refusal), vec!["type"]);

    let deleted = facts(&[
        (Fact::UserRegistered("u1".into()), true),
        (Fact::ArticleLive("a1".into()), false),
    ]);
    let (_, refusal) =
        refused(post::<Favorite>(vec![], "a1:u1", vec![favorited.clone()], "u1", &deleted).await);
    assert_eq!(invalid_fields(&refusal), vec!["data.articleId"]);
    let (_, refusal) =
        refused(post::<Favorite>(vec![], "a1:u1", vec![favorited.clone()], "u2", &live).await);
    assert_eq!(refusal, Refusal::Forbidden);
    let (_, refusal) =
        refused(post::<Favorite>(vec![], "a1:u2", vec![favorited], "u1", &live).await);
    assert_eq!(invalid_fields(&refusal), vec!["aggregateId"]);
}

#[test]
fn timestamps_and_ids_have_one_form() {
    assert_eq!(check_timestamp("createdAt", AT), Ok(()));
    for bad in [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.000+00:00",
        "2024-01-01",
        "",
        "2024-13-01T00:00:00.000Z",
    ] {
        assert!(check_timestamp("createdAt", bad).is_err(), "{bad}");
    }
    assert!(valid_aggregate_id(&format!("{ID}:{ID}")));
    assert!(
        !valid_aggregate_id("a b")
            && !valid_aggregate_id("")
            && !valid_aggregate_id(&"a".repeat(201))
    );
    assert_eq!(check_new_id(ID), Ok(()));
    assert!(check_new_id("a:b").is_err() && check_new_id(&"a".repeat(65)).is_err());
}
