//! `POST`/`DELETE /articles/{slug}/favorite`, and the favorites count everyone sees.

use futures::future::join_all;
use serde_json::json;
use tests::{always, unique_name, unique_title, Api, Reply, TestUser, STABILITY_WINDOW};

/// Publishes an article by `author` and returns its slug.
async fn article_by(api: &Api, author: &TestUser) -> String {
    let (title, slug) = unique_title("Lovable");
    api.new_article(author, &title, &[]).await;
    slug
}

/// Asserts a 200 with the article, favorited or not by the caller, with this count.
#[track_caller]
fn assert_favorites(reply: &Reply, slug: &str, favorited: bool, count: u64) {
    let article = &reply.expect(200)["article"];
    assert_eq!(article["slug"], slug, "{article:#}");
    assert_eq!(article["favorited"], favorited, "{article:#}");
    assert_eq!(article["favoritesCount"], count, "{article:#}");
}

#[tokio::test]
async fn favorite_and_unfavorite_answer_the_article() {
    let api = Api::new();
    let author = api.new_user("loved").await;
    let fan = api.new_user("fan").await;
    let slug = article_by(&api, &author).await;

    let reply = api.favorite(&slug, Some(&fan.token)).await;
    assert_favorites(&reply, &slug, true, 1);
    assert!(reply.body["article"]["body"].is_string(), "{reply:#?}");
    assert_eq!(reply.body["article"]["author"]["username"], author.username);
    api.eventually_article(&slug, Some(&fan.token), |a| {
        a["favorited"] == true && a["favoritesCount"] == 1
    })
    .await;

    // Twice is the same as once.
    assert_favorites(&api.favorite(&slug, Some(&fan.token)).await, &slug, true, 1);

    assert_favorites(
        &api.unfavorite(&slug, Some(&fan.token)).await,
        &slug,
        false,
        0,
    );
    api.eventually_article(&slug, Some(&fan.token), |a| {
        a["favorited"] == false && a["favoritesCount"] == 0
    })
    .await;
    // Unfavoriting again is still fine.
    assert_favorites(
        &api.unfavorite(&slug, Some(&fan.token)).await,
        &slug,
        false,
        0,
    );

    // And favoriting once more works after an unfavorite.
    assert_favorites(&api.favorite(&slug, Some(&fan.token)).await, &slug, true, 1);
    api.eventually_article(&slug, Some(&fan.token), |a| {
        a["favorited"] == true && a["favoritesCount"] == 1
    })
    .await;
}

/// The count a favorite answers includes the caller's own change at once, and other users'
/// changes once they are projected: each step waits until everyone sees the previous one.
#[tokio::test]
async fn each_fan_counts_once() {
    let api = Api::new();
    let author = api.new_user("popular").await;
    let first = api.new_user("fan").await;
    let second = api.new_user("fan").await;
    let slug = article_by(&api, &author).await;
    let seen_by_all = |count: u64| {
        let (api, slug) = (&api, &slug);
        async move {
            api.eventually_article(slug, None, |a| a["favoritesCount"] == count)
                .await;
        }
    };

    let reply = api.favorite(&slug, Some(&first.token)).await;
    assert_favorites(&reply, &slug, true, 1);
    seen_by_all(1).await;
    let reply = api.favorite(&slug, Some(&second.token)).await;
    assert_favorites(&reply, &slug, true, 2);
    seen_by_all(2).await;
    let reply = api.favorite(&slug, Some(&first.token)).await;
    assert_favorites(&reply, &slug, true, 2);
    // Authors may favorite their own articles.
    let reply = api.favorite(&slug, Some(&author.token)).await;
    assert_favorites(&reply, &slug, true, 3);
    seen_by_all(3).await;
    let reply = api.unfavorite(&slug, Some(&second.token)).await;
    assert_favorites(&reply, &slug, false, 2);
    seen_by_all(2).await;

    let seen = api.article(&slug, Some(&first.token)).await;
    assert_favorites(&seen, &slug, true, 2);
    let seen = api
        .eventually_article(&slug, Some(&second.token), |a| a["favorited"] == false)
        .await;
    assert_eq!(seen["favoritesCount"], 2, "{seen:#}");
}

#[tokio::test]
async fn favorite_an_unknown_article_is_404() {
    let api = Api::new();
    let fan = api.new_user("lost").await;
    let slug = unique_name("no-such-article");

    for reply in [
        api.favorite(&slug, Some(&fan.token)).await,
        api.unfavorite(&slug, Some(&fan.token)).await,
    ] {
        assert_eq!(
            reply.expect(404),
            &json!({"errors": {"article": ["not found"]}})
        );
    }
}

#[tokio::test]
async fn favorite_without_a_token_is_401() {
    let api = Api::new();
    let author = api.new_user("guarded").await;
    let slug = article_by(&api, &author).await;

    api.favorite(&slug, None).await.expect_unauthorized();
    api.unfavorite(&slug, None).await.expect_unauthorized();
    api.favorite(&slug, Some("garbage"))
        .await
        .expect_unauthorized();
}

/// Waits until everyone sees `count` favorites on `slug`, then watches that it stays there.
async fn settles_at(api: &Api, slug: &str, count: u64) {
    api.eventually_article(slug, None, |a| a["favoritesCount"] == count)
        .await;
    always(STABILITY_WINDOW, || async {
        let reply = api.article(slug, None).await;
        if reply.status == 200 && reply.body["article"]["favoritesCount"] == count {
            Ok(())
        } else {
            Err(reply)
        }
    })
    .await;
}

#[tokio::test]
async fn fifty_fans_at_once_count_exactly_fifty() {
    let api = Api::new();
    let author = api.new_user("viral").await;
    let slug = article_by(&api, &author).await;
    let fans = api.new_users("crowd", 50).await;

    let replies = join_all(fans.iter().map(|fan| {
        let (api, slug, token) = (api.clone(), slug.clone(), fan.token.clone());
        tokio::spawn(async move { api.favorite(&slug, Some(&token)).await })
    }))
    .await;
    for reply in replies {
        let reply = reply.expect("task");
        let article = &reply.expect(200)["article"];
        assert_eq!(article["favorited"], true, "{article:#}");
        let count = article["favoritesCount"].as_u64().unwrap_or(0);
        assert!((1..=50).contains(&count), "{article:#}");
    }

    settles_at(&api, &slug, 50).await;
    for fan in &fans {
        let seen = api
            .eventually_article(&slug, Some(&fan.token), |a| a["favorited"] == true)
            .await;
        assert_eq!(seen["favoritesCount"], 50, "{seen:#}");
    }

    let replies = join_all(fans.iter().map(|fan| {
        let (api, slug, token) = (api.clone(), slug.clone(), fan.token.clone());
        tokio::spawn(async move { api.unfavorite(&slug, Some(&token)).await })
    }))
    .await;
    for reply in replies {
        let reply = reply.expect("task");
        let article = &reply.expect(200)["article"];
        assert_eq!(article["favorited"], false, "{article:#}");
        let count = article["favoritesCount"].as_u64().unwrap_or(u64::MAX);
        assert!(count < 50, "{article:#}");
    }
    settles_at(&api, &slug, 0).await;
}

#[tokio::test]
async fn favorited_filter_lists_what_a_user_favorites() {
    let api = Api::new();
    let author = api.new_user("prolific").await;
    let fan = api.new_user("collector").await;
    let older = article_by(&api, &author).await;
    let newer = article_by(&api, &author).await;
    let ignored = article_by(&api, &author).await;
    // Favorited in the other order: the list is still newest article first.
    api.favorite(&newer, Some(&fan.token)).await.expect(200);
    api.favorite(&older, Some(&fan.token)).await.expect(200);

    let query = format!("favorited={}", fan.username);
    let listed = api
        .eventually_listing(&query, Some(&fan.token), &[&newer, &older])
        .await;
    for article in listed["articles"].as_array().into_iter().flatten() {
        assert_eq!(article["favorited"], true, "{article:#}");
        assert_eq!(article["favoritesCount"], 1, "{article:#}");
    }
    api.eventually_listing(
        &format!("author={}", author.username),
        None,
        &[&ignored, &newer, &older],
    )
    .await;

    api.unfavorite(&older, Some(&fan.token)).await.expect(200);
    api.eventually_listing(&query, None, &[&newer]).await;
}
