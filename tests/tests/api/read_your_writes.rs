//! Read-your-writes: every write answers the position it appended (`conduit-position`); a read
//! that sends it back (`conduit-min-position`) shows the write at once and says
//! `conduit-consistency: current`, or, once the bound (3 s unless `CONDUIT_READ_WAIT_MS`
//! says otherwise) has passed, answers what it has and says `stale`. No test here waits for a
//! read model any other way: the very first read after the write must show it.

use reqwest::Method;
use serde_json::{json, Value};
use tests::{slug_of, unique_name, unique_title, Api, Reply, TestUser};

const POSITION: &str = "conduit-position";
const MIN_POSITION: &str = "conduit-min-position";
const CONSISTENCY: &str = "conduit-consistency";

/// The position a write answered with.
#[track_caller]
fn position(reply: &Reply) -> String {
    match reply.header(POSITION) {
        Some(position) => position.to_owned(),
        None => panic!("the write answered no {POSITION} header: {reply:#?}"),
    }
}

/// `GET path` with `conduit-min-position: positions` (comma-separated).
async fn read_after(api: &Api, path: &str, token: Option<&str>, positions: &[&str]) -> Reply {
    api.send(
        api.request(Method::GET, path, token)
            .header(MIN_POSITION, positions.join(", ")),
    )
    .await
}

/// Asserts a 200 that says it reflects the positions asked for; returns the body.
#[track_caller]
fn current(reply: &Reply) -> &Value {
    let body = reply.expect(200);
    assert_eq!(reply.header(CONSISTENCY), Some("current"), "{reply:#?}");
    body
}

/// Registers a fresh user; returns them and the position of their registration.
async fn registered(api: &Api, tag: &str) -> (TestUser, String) {
    let username = unique_name(tag);
    let email = tests::email_for(&username);
    let password = format!("pw-{}", unique_name("secret"));
    let reply = api.try_register(&username, &email, &password).await;
    let token = reply.expect(201)["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let at = position(&reply);
    (
        TestUser {
            username,
            email,
            password,
            token,
        },
        at,
    )
}

#[tokio::test]
async fn a_registration_and_a_profile_update_are_read_back_at_once() {
    let api = Api::new();
    let (user, registration) = registered(&api, "ryw").await;
    let id = api.stack().verify(&user.token).sub;
    assert_eq!(registration, format!("User#{id}@1"));

    let me = read_after(&api, "/user", Some(&user.token), &[&registration]).await;
    assert_eq!(current(&me)["user"]["username"], user.username.as_str());

    let bio = unique_name("bio");
    let update = api
        .update_user(Some(&user.token), &json!({ "bio": bio }))
        .await;
    update.expect(200);
    let updated = position(&update);
    assert_eq!(updated, format!("User#{id}@2"));
    let me = read_after(&api, "/user", Some(&user.token), &[&updated]).await;
    assert_eq!(current(&me)["user"]["bio"], bio.as_str());
    let profile = read_after(
        &api,
        &format!("/profiles/{}", user.username),
        None,
        &[&updated],
    )
    .await;
    assert_eq!(current(&profile)["profile"]["bio"], bio.as_str());
    let view = read_after(&api, &format!("/views/profiles/{id}"), None, &[&updated]).await;
    assert_eq!(current(&view)["item"]["bio"], bio.as_str());
}

#[tokio::test]
async fn a_new_article_and_its_comment_are_read_back_at_once() {
    let api = Api::new();
    let (author, registration) = registered(&api, "rywauthor").await;
    let (title, slug) = unique_title("Read your writes");
    let created = api
        .create_article(
            Some(&author.token),
            &json!({"title": title, "description": "d", "body": "b", "tagList": ["ryw"]}),
        )
        .await;
    assert_eq!(slug_of(&created.expect(201)["article"]), slug);
    let published = position(&created);
    assert!(published.starts_with("Article#"), "{published}");

    // The article reads its author's profile too: both positions.
    let article = read_after(
        &api,
        &format!("/articles/{slug}"),
        None,
        &[&registration, &published],
    )
    .await;
    let article = current(&article);
    assert_eq!(article["article"]["title"], title.as_str());
    assert_eq!(
        article["article"]["author"]["username"],
        author.username.as_str()
    );

    let commented = api.add_comment(&slug, Some(&author.token), "First!").await;
    commented.expect(200);
    let comment = position(&commented);
    let comments = read_after(
        &api,
        &format!("/articles/{slug}/comments"),
        None,
        &[&registration, &comment],
    )
    .await;
    let comments = current(&comments)["comments"].clone();
    assert_eq!(comments.as_array().map(Vec::len), Some(1), "{comments}");
    assert_eq!(comments[0]["body"], "First!");
}

#[tokio::test]
async fn a_follow_and_a_publish_show_in_the_feed_at_once() {
    let api = Api::new();
    let (reader, reader_registered) = registered(&api, "rywreader").await;
    let (author, author_registered) = registered(&api, "rywfollowed").await;
    let followed = api.follow(&author.username, Some(&reader.token)).await;
    followed.expect(200);
    let follow = position(&followed);
    let (title, slug) = unique_title("Fed at once");
    let created = api
        .create_article(
            Some(&author.token),
            &json!({"title": title, "description": "d", "body": "b"}),
        )
        .await;
    created.expect(201);
    let published = position(&created);

    let feed = read_after(
        &api,
        "/articles/feed",
        Some(&reader.token),
        &[&reader_registered, &author_registered, &follow, &published],
    )
    .await;
    let feed = current(&feed);
    assert_eq!(tests::slugs(feed), [slug]);
    assert_eq!(feed["articles"][0]["author"]["following"], true);
}

#[tokio::test]
async fn without_the_header_a_read_neither_waits_nor_says_so() {
    let api = Api::new();
    let (user, _) = registered(&api, "rywplain").await;
    let reply = api.get("/tags", None).await;
    reply.expect(200);
    assert_eq!(reply.header(CONSISTENCY), None, "{reply:#?}");
    let me = api.eventually_current_user(&user.token, |_| true).await;
    assert_eq!(me["username"], user.username.as_str());
    let reply = api.get("/user", Some(&user.token)).await;
    reply.expect(200);
    assert_eq!(reply.header(CONSISTENCY), None, "{reply:#?}");
}

#[tokio::test]
async fn a_position_never_reached_answers_what_there_is_as_stale() {
    let api = Api::new();
    let (user, registration) = registered(&api, "rywstale").await;
    let id = api.stack().verify(&user.token).sub;
    let ahead = format!("User#{id}@1000000");
    current(&read_after(&api, "/user", Some(&user.token), &[&registration]).await);

    let reply = read_after(&api, "/user", Some(&user.token), &[&registration, &ahead]).await;
    assert_eq!(
        reply.expect(200)["user"]["username"],
        user.username.as_str()
    );
    assert_eq!(reply.header(CONSISTENCY), Some("stale"), "{reply:#?}");

    // Only the projections a read reads are waited for: the tags come from the search index,
    // which no user event reaches.
    let tags = read_after(&api, "/tags", None, &[&ahead]).await;
    current(&tags);
    let view = read_after(&api, "/views/tags?limit=1", None, &[&ahead]).await;
    current(&view);
    let index = read_after(&api, "/views", None, &[&ahead]).await;
    current(&index);
}

#[tokio::test]
async fn a_header_that_is_no_position_is_400() {
    let api = Api::new();
    let (user, registration) = registered(&api, "rywbad").await;
    let too_many = vec![registration.as_str(); 21].join(",");
    for bad in [
        "",
        "nonsense",
        "User#abc",
        "User#abc@",
        "User#abc@0",
        "User#abc@-1",
        "User#abc@ten",
        "#abc@1",
        "User#@1",
        "User#a b@1",
        too_many.as_str(),
    ] {
        for path in ["/user", "/tags", "/views/profiles", "/articles"] {
            let reply = read_after(&api, path, Some(&user.token), &[bad]).await;
            reply.expect_error(400, MIN_POSITION);
            assert_eq!(reply.header(CONSISTENCY), None);
        }
    }
}

#[tokio::test]
async fn browsers_may_send_positions_and_read_what_the_answers_say() {
    use reqwest::header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_EXPOSE_HEADERS,
        ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    };
    const ORIGIN_URL: &str = "http://app.example.test:4100";
    let api = Api::new();
    let preflight = api
        .send(
            api.request(Method::OPTIONS, "/user", None)
                .header(ORIGIN, ORIGIN_URL)
                .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .header(
                    ACCESS_CONTROL_REQUEST_HEADERS,
                    "authorization,conduit-min-position",
                ),
        )
        .await;
    assert!(preflight.status.is_success(), "{preflight:#?}");
    let allowed = preflight
        .header(ACCESS_CONTROL_ALLOW_HEADERS.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed == "*" || allowed.contains(MIN_POSITION),
        "{preflight:#?}"
    );
    let reply = api
        .send(
            api.request(Method::GET, "/views/tags", None)
                .header(ORIGIN, ORIGIN_URL),
        )
        .await;
    reply.expect(200);
    let exposed = reply
        .header(ACCESS_CONTROL_EXPOSE_HEADERS.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in [POSITION, CONSISTENCY, "conduit-next-cursor"] {
        assert!(exposed == "*" || exposed.contains(header), "{reply:#?}");
    }
}
