//! A client that sends nothing special reads its own writes at once: after each RealWorld
//! write, the read a frontend makes next is sent the moment the answer arrives, with no
//! `conduit-min-position` and no token where a frontend sends none, and must show the write.
//! Every miss is counted over many rounds, and the test fails on any.
//!
//! Writes also say what they got (`conduit-consistency`), and `Prefer: respond-async` answers
//! without waiting.

use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tests::{slug_of, slugs, unique_name, unique_title, Api, Reply, TestUser};

/// Rounds of every case; each round has its own users and article.
const ROUNDS: usize = 20;
/// Rounds run at once.
const AT_ONCE: usize = 4;

const CONSISTENCY: &str = "conduit-consistency";

/// The misses of one round: which read, after which write, showed what.
#[derive(Default)]
struct Misses(Vec<String>);

impl Misses {
    /// Counts a miss unless `shown`.
    fn check(&mut self, case: &str, shown: bool, reply: &Reply) {
        if !shown {
            self.0
                .push(format!("{case}: {} {}", reply.status, reply.shown_body()));
        }
    }
}

/// A write's answer: its status, and that it waited for the read models.
#[track_caller]
fn written(reply: &Reply, status: u16) -> Value {
    let body = reply.expect(status).clone();
    assert_eq!(reply.header(CONSISTENCY), Some("current"), "{reply:#?}");
    body
}

fn listed(reply: &Reply, slug: &str) -> bool {
    reply.status == 200 && slugs(&reply.body).iter().any(|s| s == slug)
}

/// One round of every write and the read after it.
async fn round(api: &Api, i: usize) -> Vec<String> {
    let mut misses = Misses::default();

    // Register → the profile page (no token).
    let username = unique_name("raw");
    let email = tests::email_for(&username);
    let password = format!("pw-{}", unique_name("secret"));
    let registered = api.try_register(&username, &email, &password).await;
    let token = written(&registered, 201)["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let author = TestUser {
        username,
        email,
        password,
        token,
    };
    let profile = api.profile(&author.username, None).await;
    misses.check(
        "register → profile",
        profile.status == 200 && profile.body["profile"]["username"] == author.username.as_str(),
        &profile,
    );

    // PUT /user → the profile page (no token) and GET /user.
    let bio = format!("bio {i} {}", unique_name("b"));
    written(
        &api.update_user(Some(&author.token), &json!({ "bio": bio }))
            .await,
        200,
    );
    let profile = api.profile(&author.username, None).await;
    misses.check(
        "PUT /user → profile",
        profile.body["profile"]["bio"] == bio.as_str(),
        &profile,
    );
    let me = api.get("/user", Some(&author.token)).await;
    misses.check(
        "PUT /user → GET /user",
        me.body["user"]["bio"] == bio.as_str(),
        &me,
    );

    // Publish → the article page, the author's list, the tag's list (no token).
    let (title, _) = unique_title("Read at once");
    let tag = unique_name("rawtag");
    let created = api
        .create_article(
            Some(&author.token),
            &json!({"title": title, "description": "d", "body": "b", "tagList": [tag]}),
        )
        .await;
    let slug = slug_of(&written(&created, 201)["article"]);
    let page = api.article(&slug, None).await;
    misses.check("publish → article", page.status == 200, &page);
    let by_author = api
        .list_articles(&format!("author={}", author.username), None)
        .await;
    misses.check("publish → ?author=", listed(&by_author, &slug), &by_author);
    let by_tag = api.list_articles(&format!("tag={tag}"), None).await;
    misses.check("publish → ?tag=", listed(&by_tag, &slug), &by_tag);

    // A reader comments → the comments (no token).
    let reader = api.new_user("rawreader").await;
    let comment = written(
        &api.add_comment(&slug, Some(&reader.token), "at once").await,
        200,
    )["comment"]["id"]
        .clone();
    let comments = api.comments(&slug, None).await;
    let has_comment = |reply: &Reply| {
        reply.body["comments"]
            .as_array()
            .is_some_and(|list| list.iter().any(|c| c["id"] == comment))
    };
    misses.check("comment → comments", has_comment(&comments), &comments);

    // Favorite → the reader's favorites list and the count (no token).
    written(&api.favorite(&slug, Some(&reader.token)).await, 200);
    let favorited = api
        .list_articles(&format!("favorited={}", reader.username), None)
        .await;
    misses.check(
        "favorite → ?favorited=",
        listed(&favorited, &slug),
        &favorited,
    );
    let page = api.article(&slug, None).await;
    misses.check(
        "favorite → favoritesCount",
        page.body["article"]["favoritesCount"] == 1,
        &page,
    );

    // Follow → the reader's feed and the profile's `following`.
    written(
        &api.follow(&author.username, Some(&reader.token)).await,
        200,
    );
    let feed = api.get("/articles/feed", Some(&reader.token)).await;
    misses.check("follow → feed", listed(&feed, &slug), &feed);
    let profile = api.profile(&author.username, Some(&reader.token)).await;
    misses.check(
        "follow → following",
        profile.body["profile"]["following"] == true,
        &profile,
    );

    // A title edit → the article under its new slug (no token).
    let (new_title, _) = unique_title("Renamed at once");
    let edited = api
        .update_article(&slug, Some(&author.token), &json!({ "title": new_title }))
        .await;
    let new_slug = slug_of(&written(&edited, 200)["article"]);
    let page = api.article(&new_slug, None).await;
    misses.check(
        "title edit → new slug",
        page.status == 200 && page.body["article"]["title"] == new_title.as_str(),
        &page,
    );

    // Deleting the comment → gone from the comments (no token).
    let id = comment.to_string();
    let deleted = api
        .delete_comment(&new_slug, &id, Some(&reader.token))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:#?}");
    assert_eq!(deleted.header(CONSISTENCY), Some("current"), "{deleted:#?}");
    let comments = api.comments(&new_slug, None).await;
    misses.check(
        "delete comment → comments",
        comments.status == 200 && !has_comment(&comments),
        &comments,
    );

    // Deleting the article → 404, absent from the lists and from the reader's feed.
    let deleted = api.delete_article(&new_slug, Some(&author.token)).await;
    assert_eq!(deleted.status, 204, "{deleted:#?}");
    assert_eq!(deleted.header(CONSISTENCY), Some("current"), "{deleted:#?}");
    let page = api.article(&new_slug, None).await;
    misses.check("delete → 404", page.status == 404, &page);
    let by_author = api
        .list_articles(&format!("author={}", author.username), None)
        .await;
    misses.check(
        "delete → ?author=",
        by_author.status == 200 && !listed(&by_author, &new_slug),
        &by_author,
    );
    let feed = api.get("/articles/feed", Some(&reader.token)).await;
    misses.check(
        "delete → feed",
        feed.status == 200 && !listed(&feed, &new_slug),
        &feed,
    );
    misses.0
}

#[tokio::test]
async fn every_write_is_read_back_at_once_without_asking() {
    let api = Api::new();
    let misses: Vec<String> = stream::iter(0..ROUNDS)
        .map(|i| {
            let api = api.clone();
            async move { round(&api, i).await }
        })
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .concat();
    // 16 reads a round.
    let reads = ROUNDS * 16;
    assert!(
        misses.is_empty(),
        "{} of {reads} reads missed the write just answered:\n{}",
        misses.len(),
        misses.join("\n")
    );
}

#[tokio::test]
async fn prefer_respond_async_answers_without_waiting_and_says_so() {
    let api = Api::new();
    let user = api.new_user("rawasync").await;
    let reply = api
        .send(
            api.request(Method::PUT, "/user", Some(&user.token))
                .header("Prefer", "respond-async")
                .json(&json!({"user": {"bio": "later"}})),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.header(CONSISTENCY), Some("unchecked"), "{reply:#?}");
    assert_eq!(
        reply.header("preference-applied"),
        Some("respond-async"),
        "{reply:#?}"
    );
    assert!(reply.header("conduit-position").is_some(), "{reply:#?}");
    assert_eq!(
        reply.header("server-timing"),
        None,
        "nothing waited: {reply:#?}"
    );
    // It is committed all the same, and shows once projected.
    api.eventually_current_user(&user.token, |u| u["bio"] == "later")
        .await;

    // `wait=<seconds>` only shortens the wait: this one still waits, and gets there.
    let reply = api
        .send(
            api.request(Method::PUT, "/user", Some(&user.token))
                .header("Prefer", "wait=2")
                .json(&json!({"user": {"bio": "soon"}})),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.header(CONSISTENCY), Some("current"), "{reply:#?}");
    assert_eq!(reply.header("preference-applied"), Some("wait=2"));
    let waited = reply
        .header("server-timing")
        .and_then(|t| t.strip_prefix("wait;dur="))
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(
        waited.is_some_and(|ms| ms >= 0.0),
        "Server-Timing gives the wait in milliseconds: {reply:#?}"
    );
    let me = api.get("/user", Some(&user.token)).await;
    assert_eq!(me.expect(200)["user"]["bio"], "soon");

    // A refused write appended nothing and waits for nothing.
    let refused = api
        .update_user(Some(&user.token), &json!({"email": "not an email"}))
        .await;
    refused.expect_error(422, "email");
    assert_eq!(refused.header(CONSISTENCY), None, "{refused:#?}");
}
