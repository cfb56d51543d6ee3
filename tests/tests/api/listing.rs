//! `GET /articles`: filters, order, counts and pages. Every test lists by its own tag or author,
//! so that the other tests' articles never show.

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tests::{is_timestamp, slug_of, slugs, unique_name, unique_title, Api, TestUser};

/// Publishes an article by `author` with these tags and returns its slug.
async fn publish(api: &Api, author: &TestUser, tags: &[&str]) -> String {
    let (title, _) = unique_title("Listed");
    slug_of(&api.new_article(author, &title, tags).await)
}

/// Publishes `count` articles by `author` with this tag one after the other; returns their
/// slugs newest first.
async fn publish_in_turn(api: &Api, author: &TestUser, tag: &str, count: usize) -> Vec<String> {
    let mut published = Vec::with_capacity(count);
    for _ in 0..count {
        published.push(publish(api, author, &[tag]).await);
    }
    published.reverse();
    published
}

#[tokio::test]
async fn filters_by_tag_author_and_favorited_alone_and_together() {
    let api = Api::new();
    let a = api.new_user("author_a").await;
    let b = api.new_user("author_b").await;
    let fan = api.new_user("filterfan").await;
    let t1 = unique_name("t1");
    let t2 = unique_name("t2");
    let a1 = publish(&api, &a, &[&t1]).await;
    let a2 = publish(&api, &a, &[&t1, &t2]).await;
    let a3 = publish(&api, &a, &[&t2]).await;
    let b1 = publish(&api, &b, &[&t1]).await;
    let b2 = publish(&api, &b, &[&t2]).await;
    for slug in [&a1, &a3, &b1] {
        api.favorite(slug, Some(&fan.token)).await.expect(200);
    }
    let (a, b, f) = (&a.username, &b.username, &fan.username);

    let cases: [(String, Vec<&String>); 10] = [
        (format!("tag={t1}"), vec![&b1, &a2, &a1]),
        (format!("tag={t2}"), vec![&b2, &a3, &a2]),
        (format!("author={a}"), vec![&a3, &a2, &a1]),
        (format!("author={b}"), vec![&b2, &b1]),
        (format!("favorited={f}"), vec![&b1, &a3, &a1]),
        (format!("tag={t1}&author={a}"), vec![&a2, &a1]),
        (format!("tag={t1}&favorited={f}"), vec![&b1, &a1]),
        (format!("author={a}&favorited={f}"), vec![&a3, &a1]),
        (format!("tag={t2}&author={a}&favorited={f}"), vec![&a3]),
        (format!("tag={t2}&author={b}&favorited={f}"), vec![]),
    ];
    for (query, expected) in &cases {
        api.eventually_listing(query, None, expected).await;
    }
}

#[tokio::test]
async fn lists_are_newest_first() {
    let api = Api::new();
    let author = api.new_user("chronicler").await;
    let tag = unique_name("chrono");
    let newest_first = publish_in_turn(&api, &author, &tag, 4).await;

    let listed = api
        .eventually_listing(&format!("tag={tag}"), None, &newest_first)
        .await;

    let times: Vec<&str> = listed["articles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["createdAt"].as_str())
        .collect();
    assert_eq!(times.len(), 4, "{listed:#}");
    assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");
}

#[tokio::test]
async fn list_items_have_no_body_and_show_the_callers_view() {
    let api = Api::new();
    let author = api.new_user("shown").await;
    let reader = api.new_user("viewer").await;
    api.update_user(Some(&author.token), &json!({"bio": "hello"}))
        .await
        .expect(200);
    let tag = unique_name("shape");
    let (title, slug) = unique_title("In A List");
    let created = api.new_article(&author, &title, &[&tag]).await;
    api.follow(&author.username, Some(&reader.token))
        .await
        .expect(200);
    api.favorite(&slug, Some(&reader.token)).await.expect(200);

    let query = format!("tag={tag}");
    let listed = api
        .eventually_get(&format!("/articles?{query}"), Some(&reader.token), |r| {
            r.status == 200
                && r.body["articles"][0]["favorited"] == true
                && r.body["articles"][0]["author"]["following"] == true
        })
        .await
        .body;

    let mut keys: Vec<&String> = listed
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["articles", "articlesCount"], "{listed:#}");
    assert_eq!(listed["articlesCount"], 1);
    let item = &listed["articles"][0];
    let mut expected = created.clone();
    expected.as_object_mut().map(|a| a.remove("body"));
    expected["favorited"] = json!(true);
    expected["favoritesCount"] = json!(1);
    expected["author"] = json!({
        "username": author.username, "bio": "hello", "image": "", "following": true,
    });
    assert_eq!(
        item, &expected,
        "a list item is the article without its body"
    );
    assert!(is_timestamp(&item["createdAt"]), "{item:#}");

    let anonymous = api.eventually_listing(&query, None, &[&slug]).await;
    let item = &anonymous["articles"][0];
    assert!(item.get("body").is_none(), "{item:#}");
    assert_eq!(item["favorited"], false);
    assert_eq!(item["favoritesCount"], 1);
    assert_eq!(item["author"]["following"], false);
}

#[tokio::test]
async fn unknown_filters_are_an_empty_list() {
    let api = Api::new();
    let nobody = unique_name("nobody");
    let empty = json!({"articles": [], "articlesCount": 0});

    for query in [
        format!("author={nobody}"),
        format!("favorited={nobody}"),
        format!("tag={nobody}"),
        format!("tag={nobody}&author={nobody}&favorited={nobody}"),
    ] {
        let reply = api.list_articles(&query, None).await;
        assert_eq!(reply.expect(200), &empty, "{query}");
    }
}

#[tokio::test]
async fn a_user_without_favorites_lists_none() {
    let api = Api::new();
    let idle = api.new_user("idle").await;
    api.eventually_profile(&idle.username, None, |_| true).await;

    let reply = api
        .list_articles(&format!("favorited={}", idle.username), None)
        .await;

    assert_eq!(
        reply.expect(200),
        &json!({"articles": [], "articlesCount": 0})
    );
}

#[tokio::test]
async fn pages_partition_the_matches_and_count_them_all() {
    let api = Api::new();
    let author = api.new_user("pager").await;
    let tag = unique_name("pages");
    let all = publish_in_turn(&api, &author, &tag, 5).await;
    api.eventually_listing(&format!("tag={tag}"), None, &all)
        .await;

    let mut paged = Vec::new();
    for (offset, size) in [(0, 2), (2, 2), (4, 1)] {
        let reply = api
            .list_articles(&format!("tag={tag}&limit=2&offset={offset}"), None)
            .await;
        let page = reply.expect(200);
        assert_eq!(page["articlesCount"], 5, "offset {offset}: {page:#}");
        assert_eq!(slugs(page).len(), size, "offset {offset}: {page:#}");
        paged.extend(slugs(page));
    }
    assert_eq!(paged, all);

    let first = api.list_articles(&format!("tag={tag}&limit=2"), None).await;
    assert_eq!(slugs(first.expect(200)), all[..2]);
    let rest = api
        .list_articles(&format!("tag={tag}&offset=3"), None)
        .await;
    assert_eq!(slugs(rest.expect(200)), all[3..]);

    let beyond = api
        .list_articles(&format!("tag={tag}&limit=2&offset=10"), None)
        .await;
    assert_eq!(
        beyond.expect(200),
        &json!({"articles": [], "articlesCount": 5})
    );
}

#[tokio::test]
async fn invalid_limits_and_offsets_are_422() {
    let api = Api::new();
    let tag = unique_name("invalid");

    for limit in ["0", "-1", "abc", "1.5"] {
        let reply = api
            .list_articles(&format!("tag={tag}&limit={limit}"), None)
            .await;
        assert_eq!(reply.status, 422, "limit={limit:?}: {reply:#?}");
        reply.expect_error(422, "limit");
    }
    for offset in ["-1", "abc", "1.5"] {
        let reply = api
            .list_articles(&format!("tag={tag}&offset={offset}"), None)
            .await;
        assert_eq!(reply.status, 422, "offset={offset:?}: {reply:#?}");
        reply.expect_error(422, "offset");
    }
}

#[tokio::test]
async fn the_default_page_is_twenty() {
    let api = Api::new();
    let author = api.new_user("twentyone").await;
    let tag = unique_name("default");
    let all = publish_in_turn(&api, &author, &tag, 21).await;

    let page = api
        .eventually_get(&format!("/articles?tag={tag}"), None, |r| {
            r.status == 200 && r.body["articlesCount"] == 21
        })
        .await
        .body;

    assert_eq!(slugs(&page), all[..20]);
    let last = api
        .list_articles(&format!("tag={tag}&offset=20"), None)
        .await;
    let last = last.expect(200);
    assert_eq!(slugs(last), all[20..]);
    assert_eq!(last["articlesCount"], 21);
}

#[tokio::test]
async fn a_limit_over_the_maximum_is_clamped_to_one_hundred() {
    let api = Api::new();
    let author = api.new_user("hundred").await;
    let tag = unique_name("clamp");
    let published: Vec<Value> = stream::iter(0..101)
        .map(|_| {
            let (api, author, tag) = (api.clone(), author.clone(), tag.clone());
            async move {
                let (title, _) = unique_title("Bulk");
                api.new_article(&author, &title, &[&tag]).await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(published.len(), 101);

    let page = api
        .eventually_get(&format!("/articles?tag={tag}&limit=1000"), None, |r| {
            r.status == 200 && r.body["articlesCount"] == 101
        })
        .await
        .body;

    assert_eq!(slugs(&page).len(), 100, "at most 100 items in one page");
    for limit in [100, 101] {
        let reply = api
            .list_articles(&format!("tag={tag}&limit={limit}"), None)
            .await;
        let body = reply.expect(200);
        assert_eq!(slugs(body).len(), 100, "limit={limit}");
        assert_eq!(body["articlesCount"], 101, "limit={limit}");
    }
    let rest = api
        .list_articles(&format!("tag={tag}&limit=1000&offset=100"), None)
        .await;
    assert_eq!(slugs(rest.expect(200)).len(), 1);
}
