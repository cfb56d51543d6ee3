//! `GET /articles/feed`: the articles of the authors the caller follows, newest first, built
//! asynchronously by the feed projector. Every test has its own users, so a new user's feed
//! holds only what the test put there.

use serde_json::{json, Value};
use tests::{
    always, sign_with, slug_of, slugs, unique_title, unix_now, Api, Reply, TestUser,
    STABILITY_WINDOW,
};

/// `GET /articles/feed?{query}` as `reader`.
async fn feed(api: &Api, reader: &TestUser, query: &str) -> Reply {
    api.get(&format!("/articles/feed?{query}"), Some(&reader.token))
        .await
}

/// Whether a feed answer is a 200 with exactly these slugs in this order, counting them all.
fn holds<S: AsRef<str>>(reply: &Reply, expected: &[S]) -> bool {
    let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    reply.status == 200
        && slugs(&reply.body) == expected
        && reply.body["articlesCount"] == expected.len()
}

/// Waits until `reader`'s feed (its first 100) is exactly these slugs, newest first, and
/// counts them; returns the body.
async fn eventually_feed<S: AsRef<str>>(api: &Api, reader: &TestUser, expected: &[S]) -> Value {
    api.eventually_get("/articles/feed?limit=100", Some(&reader.token), |r| {
        holds(r, expected)
    })
    .await
    .body
}

/// Publishes an article by `author` and returns it.
async fn publish(api: &Api, author: &TestUser) -> Value {
    let (title, _) = unique_title("Fed");
    api.new_article(author, &title, &["feed"]).await
}

/// Publishes `count` articles by `author` one after the other; returns their slugs newest
/// first.
async fn publish_in_turn(api: &Api, author: &TestUser, count: usize) -> Vec<String> {
    let mut slugs = Vec::with_capacity(count);
    for _ in 0..count {
        slugs.push(slug_of(&publish(api, author).await));
    }
    slugs.reverse();
    slugs
}

async fn follow(api: &Api, reader: &TestUser, author: &TestUser) {
    api.follow(&author.username, Some(&reader.token))
        .await
        .expect(200);
}

#[tokio::test]
async fn the_feed_needs_a_valid_token() {
    let api = Api::new();
    let reader = api.new_user("feedless").await;
    let now = unix_now();
    let forged = sign_with(
        b"not-the-stack-secret-0123456789-abcdefghijklmn",
        &json!({"sub": "someone", "iat": now, "exp": now + 600}),
    );

    api.get("/articles/feed", None).await.expect_unauthorized();
    for token in ["garbage", forged.as_str()] {
        let reply = api.get("/articles/feed", Some(token)).await;
        assert_eq!(reply.status, 401, "{token:?}: {reply:#?}");
        reply.expect_unauthorized();
    }
    // A bad page without a token is still a 401; with one, a fresh user's feed is empty.
    api.get("/articles/feed?limit=0", None)
        .await
        .expect_unauthorized();
    let reply = feed(&api, &reader, "").await;
    assert_eq!(
        reply.expect(200),
        &json!({"articles": [], "articlesCount": 0})
    );
}

#[tokio::test]
async fn following_brings_the_authors_articles_newest_first() {
    let api = Api::new();
    let author = api.new_user("feeder").await;
    let reader = api.new_user("follower").await;
    let mut published = Vec::new();
    for _ in 0..3 {
        published.push(publish(&api, &author).await);
    }
    published.reverse();
    let expected: Vec<String> = published.iter().map(slug_of).collect();

    follow(&api, &reader, &author).await;

    let body = eventually_feed(&api, &reader, &expected).await;
    let mut keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["articles", "articlesCount"], "{body:#}");
    let listed = body["articles"].as_array().cloned().unwrap_or_default();
    for (item, created) in listed.iter().zip(&published) {
        let mut expected = created.clone();
        expected.as_object_mut().map(|a| a.remove("body"));
        expected["author"]["following"] = json!(true);
        assert_eq!(
            item, &expected,
            "a feed item is the article without its body"
        );
    }
    let times: Vec<&str> = listed
        .iter()
        .filter_map(|a| a["createdAt"].as_str())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
}

#[tokio::test]
async fn a_new_article_comes_first() {
    let api = Api::new();
    let author = api.new_user("prolific").await;
    let reader = api.new_user("subscriber").await;
    let first = publish_in_turn(&api, &author, 1).await;
    follow(&api, &reader, &author).await;
    eventually_feed(&api, &reader, &first).await;

    let newest = slug_of(&publish(&api, &author).await);

    eventually_feed(&api, &reader, &[newest.as_str(), first[0].as_str()]).await;
}

#[tokio::test]
async fn edits_show_in_the_feed() {
    let api = Api::new();
    let author = api.new_user("reviser").await;
    let reader = api.new_user("proofreader").await;
    let slugs = publish_in_turn(&api, &author, 2).await;
    follow(&api, &reader, &author).await;
    eventually_feed(&api, &reader, &slugs).await;

    let (title, new_slug) = unique_title("Rewritten");
    let changes = json!({
        "title": title,
        "description": "Rewritten description",
        "body": "Rewritten body",
    });
    let reply = api
        .update_article(&slugs[1], Some(&author.token), &changes)
        .await;
    assert_eq!(reply.expect(200)["article"]["slug"], new_slug);

    // Same place (the creation time did not change), new slug, title and description.
    let body = eventually_feed(&api, &reader, &[slugs[0].as_str(), new_slug.as_str()]).await;
    let edited = &body["articles"][1];
    assert_eq!(edited["title"], title, "{edited:#}");
    assert_eq!(edited["description"], "Rewritten description", "{edited:#}");
    assert!(edited.get("body").is_none(), "{edited:#}");
}

#[tokio::test]
async fn a_deleted_article_leaves_the_feed() {
    let api = Api::new();
    let author = api.new_user("retractor").await;
    let reader = api.new_user("witness").await;
    let slugs = publish_in_turn(&api, &author, 3).await;
    follow(&api, &reader, &author).await;
    eventually_feed(&api, &reader, &slugs).await;

    api.delete_article(&slugs[1], Some(&author.token))
        .await
        .expect(204);

    eventually_feed(&api, &reader, &[&slugs[0], &slugs[2]]).await;
}

#[tokio::test]
async fn unfollowing_takes_only_that_authors_articles_away() {
    let api = Api::new();
    let left = api.new_user("dropped").await;
    let kept = api.new_user("kept").await;
    let reader = api.new_user("fickle").await;
    let left_slugs = publish_in_turn(&api, &left, 2).await;
    let kept_slug = slug_of(&publish(&api, &kept).await);
    follow(&api, &reader, &left).await;
    follow(&api, &reader, &kept).await;
    let all = [kept_slug.as_str(), &left_slugs[0], &left_slugs[1]];
    eventually_feed(&api, &reader, &all).await;

    api.unfollow(&left.username, Some(&reader.token))
        .await
        .expect(200);
    eventually_feed(&api, &reader, &[&kept_slug]).await;

    api.unfollow(&kept.username, Some(&reader.token))
        .await
        .expect(200);
    let body = eventually_feed(&api, &reader, tests::NO_ARTICLES).await;
    assert_eq!(body, json!({"articles": [], "articlesCount": 0}));
}

#[tokio::test]
async fn only_followed_authors_show() {
    let api = Api::new();
    let author = api.new_user("followed").await;
    let reader = api.new_user("selective").await;
    let stranger = api.new_user("stranger").await;
    follow(&api, &reader, &author).await;
    // The stranger follows the reader: the reader's own article goes to the stranger's feed,
    // never to the reader's.
    follow(&api, &stranger, &reader).await;
    let followed = slug_of(&publish(&api, &author).await);
    let own = slug_of(&publish(&api, &reader).await);
    publish(&api, &stranger).await;

    eventually_feed(&api, &stranger, &[&own]).await;
    eventually_feed(&api, &reader, &[&followed]).await;
    always(STABILITY_WINDOW, || async {
        let reply = feed(&api, &reader, "").await;
        if holds(&reply, &[&followed]) {
            Ok(())
        } else {
            Err(reply)
        }
    })
    .await;
    // The author follows nobody: their own article is not in their feed.
    let reply = feed(&api, &author, "").await;
    assert_eq!(
        reply.expect(200),
        &json!({"articles": [], "articlesCount": 0})
    );
}

#[tokio::test]
async fn pages_partition_the_feed_and_count_it_all() {
    let api = Api::new();
    let one = api.new_user("pagerone").await;
    let two = api.new_user("pagertwo").await;
    let reader = api.new_user("pagereader").await;
    follow(&api, &reader, &one).await;
    follow(&api, &reader, &two).await;
    // 7 articles, alternating authors, one after the other.
    let mut all = Vec::new();
    for i in 0..7 {
        let author = if i % 2 == 0 { &one } else { &two };
        all.push(slug_of(&publish(&api, author).await));
    }
    all.reverse();
    eventually_feed(&api, &reader, &all).await;

    for limit in 1..=3 {
        let mut paged = Vec::new();
        for offset in (0..all.len()).step_by(limit) {
            let reply = feed(&api, &reader, &format!("limit={limit}&offset={offset}")).await;
            let page = reply.expect(200);
            assert_eq!(
                page["articlesCount"], 7,
                "limit={limit} offset={offset}: {page:#}"
            );
            assert_eq!(
                slugs(page).len(),
                limit.min(all.len() - offset),
                "limit={limit} offset={offset}: {page:#}"
            );
            paged.extend(slugs(page));
        }
        assert_eq!(paged, all, "limit={limit}");
    }
    assert_eq!(
        slugs(feed(&api, &reader, "").await.expect(200)),
        all,
        "default page"
    );
    assert_eq!(
        slugs(feed(&api, &reader, "offset=5").await.expect(200)),
        all[5..]
    );

    for query in ["offset=7", "limit=3&offset=100"] {
        let reply = feed(&api, &reader, query).await;
        assert_eq!(
            reply.expect(200),
            &json!({"articles": [], "articlesCount": 7}),
            "{query}"
        );
    }
    // Above 100 is clamped, not refused.
    let reply = feed(&api, &reader, "limit=1000").await;
    assert_eq!(slugs(reply.expect(200)), all);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
    ] {
        let reply = feed(&api, &reader, query).await;
        assert_eq!(reply.status, 422, "{query}: {reply:#?}");
        reply.expect_error(422, field);
    }
}

#[tokio::test]
async fn favorites_show_in_the_feed() {
    let api = Api::new();
    let author = api.new_user("liked").await;
    let reader = api.new_user("liker").await;
    let other = api.new_user("otherfan").await;
    let slugs = publish_in_turn(&api, &author, 2).await;
    follow(&api, &reader, &author).await;
    eventually_feed(&api, &reader, &slugs).await;

    api.favorite(&slugs[1], Some(&reader.token))
        .await
        .expect(200);
    api.favorite(&slugs[1], Some(&other.token))
        .await
        .expect(200);
    // (favorited, favoritesCount) of each item, newest first.
    let flags = |reply: &Reply| -> Vec<(Value, Value)> {
        reply.body["articles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a["favorited"].clone(), a["favoritesCount"].clone()))
            .collect()
    };
    let wanted = vec![(json!(false), json!(0)), (json!(true), json!(2))];
    api.eventually_get("/articles/feed", Some(&reader.token), |r| {
        holds(r, &slugs) && flags(r) == wanted
    })
    .await;

    api.unfavorite(&slugs[1], Some(&reader.token))
        .await
        .expect(200);
    let wanted = vec![(json!(false), json!(0)), (json!(false), json!(1))];
    api.eventually_get("/articles/feed", Some(&reader.token), |r| {
        holds(r, &slugs) && flags(r) == wanted
    })
    .await;
}

#[tokio::test]
async fn an_article_titled_feed_gets_a_slug_the_feed_route_does_not_shadow() {
    let api = Api::new();
    let author = api.new_user("feedtitle").await;
    let article = api.new_article(&author, "Feed", &[]).await;
    let slug = slug_of(&article);
    assert_ne!(slug, "feed");
    assert!(slug.starts_with("feed-"), "{slug}");
    let found = api
        .eventually_article(&slug, None, |a| a["title"] == "Feed")
        .await;
    assert_eq!(found["slug"], slug.as_str());
}
