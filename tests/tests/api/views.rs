//! `GET /api/views...`: every read model as a projected view, paged with opaque cursors. The
//! tables are shared with the tests running beside these, so a page of a whole table may change
//! between two reads; pages that must stay identical are of a partition only this test writes
//! (one article's comments, one reader's feed).

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};
use tests::{base64url, slug_of, unique_name, unique_title, Api, Reply, TestUser};

/// The id of a user: the subject of their token.
fn user_id(api: &Api, user: &TestUser) -> String {
    api.stack().verify(&user.token).sub
}

/// One page: asserts a 200 of the list shape, with the cursor in the body and the header
/// alike; returns the items and the cursor.
#[track_caller]
fn page_of(view: &str, reply: &Reply) -> (Vec<Value>, Option<String>) {
    let body = reply.expect(200);
    assert_eq!(body["view"], view, "{reply:#?}");
    let items = body["items"].as_array().cloned().unwrap_or_else(|| {
        panic!("no items list: {reply:#?}");
    });
    let next = match &body["nextCursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("nextCursor {other} is neither a string nor null"),
    };
    assert_eq!(
        reply.header("conduit-next-cursor"),
        next.as_deref(),
        "the header repeats the body's cursor: {reply:#?}"
    );
    (items, next)
}

/// `GET /api/views/{view}?{query}&cursor=...` (the cursor left out when `None`).
async fn get_page(
    api: &Api,
    view: &str,
    query: &str,
    cursor: Option<&str>,
    token: Option<&str>,
) -> Reply {
    let cursor = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
    api.get(&format!("/views/{view}?{query}{cursor}"), token)
        .await
}

/// Every page of a view, following the cursors to the end: each page with the cursor that
/// asked for it (`None` for the first).
async fn every_page(
    api: &Api,
    view: &str,
    query: &str,
    token: Option<&str>,
) -> Vec<(Option<String>, Reply)> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let reply = get_page(api, view, query, cursor.as_deref(), token).await;
        let (_, next) = page_of(view, &reply);
        pages.push((cursor.clone(), reply));
        match next {
            Some(next) => {
                assert!(
                    pages.len() < 1_000,
                    "{view}: still more after 1,000 pages (a cursor that goes round?)"
                );
                cursor = Some(next);
            }
            None => return pages,
        }
    }
}

/// The identity of an item of `view`.
fn id_of(view: &str, item: &Value) -> String {
    let field = |name: &str| match &item[name] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{view} item without {name} ({other}): {item}"),
    };
    match view {
        "users" | "profiles" => field("userId"),
        "follows" => format!("{}:{}", field("followerId"), field("followeeId")),
        "articles" => field("articleId"),
        "comments" => format!("{}:{}", field("articleId"), field("commentId")),
        "favorites" => format!("{}:{}", field("articleId"), field("userId")),
        "tags" => field("tag"),
        "feeds" => field("articleId"),
        other => panic!("no view {other}"),
    }
}

/// Every item of a view (all pages of 100), asserting that none comes twice.
async fn all_items(api: &Api, view: &str, query: &str, token: Option<&str>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut items = Vec::new();
    let query = if query.is_empty() {
        "limit=100".to_owned()
    } else {
        format!("limit=100&{query}")
    };
    for (_, reply) in every_page(api, view, &query, token).await {
        for item in page_of(view, &reply).0 {
            let id = id_of(view, &item);
            assert!(seen.insert(id.clone()), "{view}: item {id} came twice");
            items.push(item);
        }
    }
    items
}

/// Pages through a view `limit` at a time to the end, then asks again for every page with the
/// cursors saved on the way, last page first: each answer must be the page it was. Returns the
/// ids of every item, in order, each once.
async fn to_the_end_and_back(
    api: &Api,
    view: &str,
    query: &str,
    token: Option<&str>,
) -> Vec<String> {
    let pages = every_page(api, view, query, token).await;
    assert!(
        pages.len() > 2,
        "{view}: want several pages, got {}",
        pages.len()
    );
    let mut ids = Vec::new();
    for (_, reply) in &pages {
        for item in page_of(view, reply).0 {
            let id = id_of(view, &item);
            assert!(!ids.contains(&id), "{view}: item {id} came twice");
            ids.push(id);
        }
    }
    for (cursor, first) in pages.iter().rev() {
        let again = get_page(api, view, query, cursor.as_deref(), token).await;
        assert_eq!(
            again.body, first.body,
            "{view}: the page after cursor {cursor:?} changed"
        );
        assert_eq!(
            again.header("conduit-next-cursor"),
            first.header("conduit-next-cursor")
        );
    }
    ids
}

/// The article ids of these slugs, from the articles view (every page of it).
async fn article_ids(api: &Api, slugs: &[String]) -> HashMap<String, String> {
    let ids: HashMap<String, String> = all_items(api, "articles", "", None)
        .await
        .into_iter()
        .filter(|a| slugs.iter().any(|s| a["slug"] == s.as_str()))
        .map(|a| {
            (
                a["slug"].as_str().unwrap_or_default().to_owned(),
                id_of("articles", &a),
            )
        })
        .collect();
    assert_eq!(ids.len(), slugs.len(), "articles found: {ids:?}");
    ids
}

/// Publishes an article by `author` and waits until it can be read.
async fn published(api: &Api, author: &TestUser, tags: &[&str]) -> String {
    let (title, _) = unique_title("Viewed");
    let slug = slug_of(&api.new_article(author, &title, tags).await);
    api.eventually_article(&slug, None, |_| true).await;
    slug
}

#[tokio::test]
async fn the_index_lists_every_view_and_which_are_private() {
    let api = Api::new();
    let body = api.get("/views", None).await.expect(200).clone();
    let views = body["views"].as_array().expect("views");
    let by_name: HashMap<&str, &Value> = views
        .iter()
        .map(|v| (v["name"].as_str().expect("name"), v))
        .collect();
    let names: BTreeSet<&str> = by_name.keys().copied().collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "users",
            "profiles",
            "follows",
            "articles",
            "comments",
            "favorites",
            "tags",
            "feeds"
        ])
    );
    for (name, view) in by_name {
        let private = matches!(name, "users" | "feeds");
        assert_eq!(view["private"], private, "{view}");
        assert!(view["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(view["id"].as_str().is_some_and(|d| d.starts_with('{')));
    }
}

#[tokio::test]
async fn an_articles_comments_page_to_the_end_and_back() {
    let api = Api::new();
    let author = api.new_user("pager").await;
    let slug = published(&api, &author, &[]).await;
    let article = article_ids(&api, std::slice::from_ref(&slug)).await[&slug].clone();
    const COMMENTS: u64 = 23;
    for n in 0..COMMENTS {
        api.add_comment(&slug, Some(&author.token), &format!("comment {n}"))
            .await
            .expect(200);
    }
    api.eventually_comments(&slug, None, |c| c.len() == COMMENTS as usize)
        .await;

    let ids = to_the_end_and_back(
        &api,
        "comments",
        &format!("limit=4&articleId={article}"),
        None,
    )
    .await;
    // Every comment, once, oldest first.
    let expected: Vec<String> = (1..=COMMENTS).map(|n| format!("{article}:{n}")).collect();
    assert_eq!(ids, expected);

    // One of them by id; the ids a comment never had are 404.
    let one = api
        .get(&format!("/views/comments/{article}:7"), None)
        .await
        .expect(200)
        .clone();
    assert_eq!(one["view"], "comments");
    assert_eq!(one["item"]["commentId"], 7);
    assert_eq!(one["item"]["body"], "comment 6");
    assert_eq!(one["item"]["authorId"], user_id(&api, &author));
    for missing in [
        format!("{article}:{}", COMMENTS + 1),
        format!("{article}:0"),
        format!("{article}:x"),
        article.clone(),
    ] {
        api.get(&format!("/views/comments/{missing}"), None)
            .await
            .expect_error(404, "comment");
    }
}

#[tokio::test]
async fn a_readers_feed_pages_newest_first_to_the_end_and_back() {
    let api = Api::new();
    let users = api.new_users("feedview", 2).await;
    let (reader, author) = (&users[0], &users[1]);
    api.follow(&author.username, Some(&reader.token))
        .await
        .expect(200);
    let mut slugs = Vec::new();
    for _ in 0..7 {
        let (title, _) = unique_title("Feed view");
        slugs.push(slug_of(&api.new_article(author, &title, &[]).await));
    }
    let newest_first: Vec<String> = slugs.iter().rev().cloned().collect();
    api.eventually_get("/articles/feed?limit=100", Some(&reader.token), |r| {
        r.status == 200 && tests::slugs(&r.body) == newest_first
    })
    .await;
    let ids = article_ids(&api, &slugs).await;

    let reader_id = user_id(&api, reader);
    let paged = to_the_end_and_back(&api, "feeds", "limit=2", Some(&reader.token)).await;
    let expected: Vec<String> = newest_first.iter().map(|s| ids[s].clone()).collect();
    assert_eq!(paged, expected);
    // The feed by its reader's id is the same feed.
    let (items, _) = page_of(
        "feeds",
        &api.get(
            &format!("/views/feeds/{reader_id}?limit=100"),
            Some(&reader.token),
        )
        .await,
    );
    let by_id: Vec<String> = items.iter().map(|i| id_of("feeds", i)).collect();
    assert_eq!(by_id, expected);
    for item in &items {
        assert_eq!(item["userId"], reader_id.as_str());
        assert_eq!(item["authorId"], user_id(&api, author));
    }
}

#[tokio::test]
async fn every_public_view_holds_what_the_test_wrote_and_its_items_by_id() {
    let api = Api::new();
    let users = api.new_users("viewer", 2).await;
    let (fan, writer) = (&users[0], &users[1]);
    let (fan_id, writer_id) = (user_id(&api, fan), user_id(&api, writer));
    let tags = [unique_name("vtag"), unique_name("vtag")];
    let slug = published(&api, writer, &[&tags[0], &tags[1]]).await;
    api.follow(&writer.username, Some(&fan.token))
        .await
        .expect(200);
    let comment = api
        .add_comment(&slug, Some(&fan.token), "Well said.")
        .await
        .expect(200)["comment"]["id"]
        .clone();
    api.favorite(&slug, Some(&fan.token)).await.expect(200);
    api.eventually_article(&slug, Some(&fan.token), |a| {
        a["favoritesCount"] == 1 && a["author"]["following"] == true
    })
    .await;
    api.eventually_comments(&slug, None, |c| c.len() == 1).await;
    api.eventually_tags(|t| tags.iter().all(|tag| t.contains(&json!(tag))))
        .await;
    let article = article_ids(&api, std::slice::from_ref(&slug)).await[&slug].clone();

    let has =
        |items: &[Value], view: &str, id: &str| items.iter().any(|item| id_of(view, item) == id);
    let profiles = all_items(&api, "profiles", "", Some(&fan.token)).await;
    assert!(has(&profiles, "profiles", &fan_id) && has(&profiles, "profiles", &writer_id));
    for profile in &profiles {
        assert!(profile.get("email").is_none(), "{profile}");
    }
    let follow = format!("{fan_id}:{writer_id}");
    assert!(has(
        &all_items(&api, "follows", "", None).await,
        "follows",
        &follow
    ));
    let followed = all_items(&api, "follows", &format!("followerId={fan_id}"), None).await;
    assert_eq!(followed.len(), 1, "{followed:?}");
    let comment_id = format!("{article}:{comment}");
    assert!(has(
        &all_items(&api, "comments", "", None).await,
        "comments",
        &comment_id
    ));
    let favorite = format!("{article}:{fan_id}");
    assert!(has(
        &all_items(&api, "favorites", "", None).await,
        "favorites",
        &favorite
    ));
    let in_use = all_items(&api, "tags", "", None).await;
    assert!(tags.iter().all(|tag| has(&in_use, "tags", tag)));
    let names: Vec<String> = in_use.iter().map(|t| id_of("tags", t)).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "tags by name: {names:?}"
    );
    // Tags page with the same cursors as the tables do.
    let (first, next) = page_of("tags", &get_page(&api, "tags", "limit=1", None, None).await);
    assert_eq!(first.len(), 1);
    if let Some(next) = next {
        let (second, _) = page_of(
            "tags",
            &get_page(&api, "tags", "limit=1", Some(&next), None).await,
        );
        assert!(second
            .iter()
            .all(|t| id_of("tags", t) > id_of("tags", &first[0])));
    }

    // One item of each, by id.
    let item = |view: &'static str, id: String| {
        let api = api.clone();
        async move {
            let reply = api.get(&format!("/views/{view}/{id}"), None).await;
            let body = reply.expect(200);
            assert_eq!(body["view"], view);
            assert_eq!(id_of(view, &body["item"]), id, "{body}");
            body["item"].clone()
        }
    };
    let profile = item("profiles", writer_id.clone()).await;
    assert_eq!(profile["username"], writer.username.as_str());
    assert!(profile.get("email").is_none());
    item("follows", follow).await;
    let shown = item("articles", article.clone()).await;
    assert_eq!(shown["slug"], slug.as_str());
    assert_eq!(shown["authorId"], writer_id.as_str());
    assert_eq!(shown["favoritesCount"], 1);
    assert!(
        shown["body"].as_str().is_some_and(|b| !b.is_empty()),
        "{shown}"
    );
    let mut sorted = tags.to_vec();
    sorted.sort();
    assert_eq!(shown["tagList"], json!(sorted));
    let said = item("comments", comment_id).await;
    assert_eq!(said["body"], "Well said.");
    item("favorites", favorite).await;
    item("tags", tags[0].clone()).await;
    for internal in ["lastSeq", "seq", "deleted", "passwordHash"] {
        assert!(shown.get(internal).is_none() && profile.get(internal).is_none());
    }

    // What is not there is 404, naming the kind of item.
    for (view, id, noun) in [
        ("follows", format!("{writer_id}:{fan_id}"), "follow"),
        ("follows", "no-colon".to_owned(), "follow"),
        ("favorites", format!("{article}:{writer_id}"), "favorite"),
        ("articles", unique_name("nope"), "article"),
        ("profiles", unique_name("nope"), "profile"),
        ("tags", unique_name("unused"), "tag"),
    ] {
        api.get(&format!("/views/{view}/{id}"), None)
            .await
            .expect_error(404, noun);
    }
}

#[tokio::test]
async fn an_unknown_view_is_404() {
    let api = Api::new();
    for path in ["/views/nope", "/views/nope/some-id", "/views/Users"] {
        api.get(path, None).await.expect_error(404, "view");
    }
}

#[tokio::test]
async fn a_limit_out_of_one_to_a_hundred_is_422() {
    let api = Api::new();
    for limit in ["", "0", "101", "-1", "x", "1.5", "99999999999999999999"] {
        api.get(&format!("/views/profiles?limit={limit}"), None)
            .await
            .expect_error(422, "limit");
    }
    page_of(
        "profiles",
        &api.get("/views/profiles?limit=100", None).await,
    );
    // A filter another view has is refused, not ignored.
    api.get("/views/profiles?articleId=a", None)
        .await
        .expect_error(422, "articleId");
    api.get("/views/comments?followerId=u", None)
        .await
        .expect_error(422, "followerId");
}

#[tokio::test]
async fn a_cursor_that_is_not_ours_for_this_read_is_400() {
    let api = Api::new();
    // Two users at least, so that a page of one has a next.
    let users = api.new_users("cursor", 2).await;
    let user = &users[0];
    let me = user_id(&api, user);
    let (_, profiles_cursor) = page_of(
        "profiles",
        &api.eventually_get("/views/profiles?limit=1", None, |r| {
            r.status == 200 && !r.body["nextCursor"].is_null()
        })
        .await,
    );
    let profiles_cursor = profiles_cursor.expect("more than one profile");
    let json = |text: &str| base64url(text.as_bytes());
    let bad = [
        // Not base64url, or padded, or a lone character.
        "!!!!".to_owned(),
        format!("{profiles_cursor}="),
        "A".to_owned(),
        // Not JSON, not an object, not ours.
        json("not json"),
        json("[1,2]"),
        json(r#"{"view":"profiles"}"#),
        json(r#"{"view":"profiles","key":{"userId":{"S":"u"}},"extra":true}"#),
        // The key of another shape: missing, extra, mistyped, empty.
        json(r#"{"view":"profiles","key":{}}"#),
        json(r#"{"view":"profiles","key":{"articleId":{"S":"a"}}}"#),
        json(r#"{"view":"profiles","key":{"userId":{"S":"u"},"x":{"S":"y"}}}"#),
        json(r#"{"view":"profiles","key":{"userId":{"N":"1"}}}"#),
        json(r#"{"view":"profiles","key":{"userId":{"S":""}}}"#),
        // Another view's.
        json(r#"{"view":"articles","key":{"articleId":{"S":"a"}}}"#),
        "a".repeat(5_000),
    ];
    for cursor in &bad {
        let reply = get_page(&api, "profiles", "limit=5", Some(cursor), None).await;
        reply.expect_error(400, "cursor");
        assert_eq!(reply.body["errors"]["cursor"], json!(["is invalid"]));
    }
    // A real cursor of one view is no cursor of another.
    get_page(&api, "follows", "", Some(&profiles_cursor), None)
        .await
        .expect_error(400, "cursor");
    // A comments cursor of one article does not page another's.
    let foreign =
        json(r#"{"view":"comments","key":{"articleId":{"S":"a1"},"commentId":{"N":"3"}}}"#);
    page_of(
        "comments",
        &get_page(&api, "comments", "articleId=a1", Some(&foreign), None).await,
    );
    get_page(&api, "comments", "articleId=a2", Some(&foreign), None)
        .await
        .expect_error(400, "cursor");
    // Nor does someone else's users cursor page the caller's own view.
    let theirs = json(r#"{"view":"users","key":{"userId":{"S":"someone-else"}}}"#);
    get_page(&api, "users", "", Some(&theirs), Some(&user.token))
        .await
        .expect_error(400, "cursor");
    let mine = json(&format!(
        r#"{{"view":"users","key":{{"userId":{{"S":"{me}"}}}}}}"#
    ));
    let (after_me, next) = page_of(
        "users",
        &get_page(&api, "users", "", Some(&mine), Some(&user.token)).await,
    );
    assert!(after_me.is_empty() && next.is_none());
}

#[tokio::test]
async fn private_views_are_readable_by_their_owner_only() {
    let api = Api::new();
    let users = api.new_users("private", 2).await;
    let (me, other) = (&users[0], &users[1]);
    let (my_id, other_id) = (user_id(&api, me), user_id(&api, other));

    for path in [
        "/views/users".to_owned(),
        format!("/views/users/{my_id}"),
        "/views/feeds".to_owned(),
        format!("/views/feeds/{my_id}"),
    ] {
        api.get(&path, None).await.expect_unauthorized();
    }
    for path in [
        format!("/views/users/{other_id}"),
        format!("/views/users/{}", unique_name("nobody")),
        format!("/views/feeds/{other_id}"),
    ] {
        api.get(&path, Some(&me.token))
            .await
            .expect_error(403, "view");
    }

    // The users list is the caller's own user, with the email.
    let reply = api
        .eventually_get("/views/users", Some(&me.token), |r| {
            r.status == 200 && r.body["items"].as_array().is_some_and(|i| i.len() == 1)
        })
        .await;
    let (items, next) = page_of("users", &reply);
    assert!(next.is_none());
    assert_eq!(
        items[0],
        json!({
            "userId": my_id,
            "email": me.email,
            "username": me.username,
            "bio": "",
            "image": "",
        })
    );
    let mine = api
        .get(&format!("/views/users/{my_id}"), Some(&me.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(mine["item"], items[0]);

    // Nowhere else does an email show: not in anyone's public profile.
    let theirs = api
        .eventually_get(
            &format!("/views/profiles/{other_id}"),
            Some(&me.token),
            |r| r.status == 200,
        )
        .await;
    let theirs = &theirs.body;
    assert!(!theirs.to_string().contains(&other.email), "{theirs}");
    let (everyone, _) = page_of(
        "profiles",
        &api.get("/views/profiles?limit=100", Some(&me.token)).await,
    );
    for profile in everyone {
        assert!(profile.get("email").is_none(), "{profile}");
    }

    // An empty feed is an empty page.
    let (feed, next) = page_of("feeds", &api.get("/views/feeds", Some(&me.token)).await);
    assert!(feed.is_empty() && next.is_none());
}
