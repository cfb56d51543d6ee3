//! `POST /articles`, `GET`, `PUT` and `DELETE /articles/{slug}`.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::{json, Value};
use tests::{is_timestamp, slug_of, slugs, unique_name, unique_title, Api, NO_ARTICLES};

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

const ARTICLE_KEYS: [&str; 10] = [
    "author",
    "body",
    "createdAt",
    "description",
    "favorited",
    "favoritesCount",
    "slug",
    "tagList",
    "title",
    "updatedAt",
];

/// A complete, valid article with this title.
fn article_with_title(title: &str) -> Value {
    json!({
        "title": title,
        "description": "Ever wonder how?",
        "body": "You have to believe.",
    })
}

// ---------------------------------------------------------------------------------------------
// POST /articles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_answers_201_with_the_whole_article() {
    let api = Api::new();
    let author = api.new_user("writer").await;
    let (title, slug) = unique_title("How to Train Your Dragon");
    let id = unique_name("tag");
    let (alpha, zeta) = (format!("alpha-{id}"), format!("zeta-{id}"));

    let reply = api
        .create_article(
            Some(&author.token),
            &json!({
                "title": title,
                "description": "Ever wonder how?",
                "body": "You have to *believe*.",
                "tagList": [zeta, alpha, zeta],
            }),
        )
        .await;

    let body = reply.expect(201);
    assert_eq!(keys(body), ["article"], "{body:#}");
    let article = &body["article"];
    assert_eq!(keys(article), ARTICLE_KEYS, "{article:#}");
    assert_eq!(article["slug"], slug);
    assert_eq!(article["title"], title);
    assert_eq!(article["description"], "Ever wonder how?");
    assert_eq!(article["body"], "You have to *believe*.");
    assert_eq!(
        article["tagList"],
        json!([alpha, zeta]),
        "sorted, no duplicates"
    );
    assert!(is_timestamp(&article["createdAt"]), "{article:#}");
    assert_eq!(article["updatedAt"], article["createdAt"]);
    assert_eq!(article["favorited"], false);
    assert_eq!(article["favoritesCount"], 0);
    assert_eq!(
        article["author"],
        json!({"username": author.username, "bio": "", "image": "", "following": false})
    );
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));

    // The read side shows the very same article.
    let read = api.eventually_article(&slug, None, |_| true).await;
    assert_eq!(&read, article);
    let own = api.article(&slug, Some(&author.token)).await;
    assert_eq!(&own.expect(200)["article"], article);
}

#[tokio::test]
async fn create_shows_the_authors_current_profile() {
    let api = Api::new();
    let author = api.new_user("styled").await;
    api.update_user(
        Some(&author.token),
        &json!({"bio": "I write", "image": "https://img.example.test/w.png"}),
    )
    .await
    .expect(200);
    let (title, slug) = unique_title("Styled");

    let article = api.new_article(&author, &title, &[]).await;

    let expected = json!({
        "username": author.username,
        "bio": "I write",
        "image": "https://img.example.test/w.png",
        "following": false,
    });
    assert_eq!(article["author"], expected);
    let read = api
        .eventually_article(&slug, None, |a| a["author"]["bio"] == "I write")
        .await;
    assert_eq!(read["author"], expected);
}

#[tokio::test]
async fn create_without_a_token_is_401() {
    let api = Api::new();
    let (title, _) = unique_title("Anonymous");

    api.create_article(None, &article_with_title(&title))
        .await
        .expect_unauthorized();
    api.create_article(Some("garbage"), &article_with_title(&title))
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn create_without_or_with_a_blank_field_names_that_field() {
    let api = Api::new();
    let author = api.new_user("careless").await;
    let (title, _) = unique_title("Incomplete");
    for field in ["title", "description", "body"] {
        let mut missing = article_with_title(&title);
        missing.as_object_mut().map(|a| a.remove(field));
        let reply = api.create_article(Some(&author.token), &missing).await;
        reply.expect_error(422, field);
        assert_eq!(keys(&reply.body["errors"]), [field], "{:#}", reply.body);

        for blank in ["", "   "] {
            let mut article = article_with_title(&title);
            article[field] = json!(blank);
            let reply = api.create_article(Some(&author.token), &article).await;
            reply.expect_error(422, field);
            assert_eq!(keys(&reply.body["errors"]), [field], "{:#}", reply.body);
        }
    }
}

#[tokio::test]
async fn create_with_several_blank_fields_names_them_all() {
    let api = Api::new();
    let author = api.new_user("blanks").await;

    let reply = api
        .create_article(
            Some(&author.token),
            &json!({"title": "", "description": " ", "body": ""}),
        )
        .await;

    reply.expect(422);
    assert_eq!(
        keys(&reply.body["errors"]),
        ["body", "description", "title"],
        "every blank field is reported at once: {:#}",
        reply.body
    );
    let reply = api.create_article(Some(&author.token), &json!({})).await;
    reply.expect(422);
    assert_eq!(
        keys(&reply.body["errors"]),
        ["body", "description", "title"],
        "every missing field is reported at once: {:#}",
        reply.body
    );
}

#[tokio::test]
async fn a_refused_create_creates_nothing() {
    let api = Api::new();
    let author = api.new_user("refused").await;
    let tag = unique_name("refused");
    let (title, title_slug) = unique_title("Refused");

    let mut blank_title = article_with_title("  ");
    blank_title["tagList"] = json!([tag]);
    api.create_article(Some(&author.token), &blank_title)
        .await
        .expect_error(422, "title");
    let mut no_body = article_with_title(&title);
    no_body["tagList"] = json!([tag]);
    no_body.as_object_mut().map(|a| a.remove("body"));
    api.create_article(Some(&author.token), &no_body)
        .await
        .expect_error(422, "body");

    // A later article of the same author is seen, and it is the only one.
    let (marker_title, marker) = unique_title("Marker");
    api.new_article(&author, &marker_title, &[]).await;
    api.eventually_listing(&format!("author={}", author.username), None, &[&marker])
        .await;
    let by_tag = api.list_articles(&format!("tag={tag}"), None).await;
    assert_eq!(
        by_tag.expect(200),
        &json!({"articles": [], "articlesCount": 0})
    );
    // The refused title's slug was not claimed either.
    let article = api.new_article(&author, &title, &[]).await;
    assert_eq!(article["slug"], title_slug);
}

#[tokio::test]
async fn create_without_a_tag_list_has_no_tags() {
    let api = Api::new();
    let author = api.new_user("untagged").await;
    let (title, slug) = unique_title("Untagged");

    let reply = api
        .create_article(Some(&author.token), &article_with_title(&title))
        .await;

    assert_eq!(reply.expect(201)["article"]["tagList"], json!([]));
    let read = api.eventually_article(&slug, None, |_| true).await;
    assert_eq!(read["tagList"], json!([]));
}

#[tokio::test]
async fn the_same_title_twice_gets_two_slugs() {
    let api = Api::new();
    let author = api.new_user("twice").await;
    let other = api.new_user("twice").await;
    let (title, slug) = unique_title("Twice Told");

    let first = api.new_article(&author, &title, &[]).await;
    let mut second = article_with_title(&title);
    second["body"] = json!("The second telling.");
    let second = api
        .create_article(Some(&other.token), &second)
        .await
        .expect(201)["article"]
        .clone();

    assert_eq!(first["slug"], slug);
    let second_slug = slug_of(&second);
    assert_ne!(second_slug, slug);
    assert!(
        second_slug.starts_with(&slug),
        "{second_slug} from {title:?}"
    );
    assert_eq!(second["title"], title);
    let read = api.eventually_article(&second_slug, None, |_| true).await;
    assert_eq!(read["body"], "The second telling.");
    assert_eq!(read["author"]["username"], other.username);
    let read = api.eventually_article(&slug, None, |_| true).await;
    assert_eq!(read["author"]["username"], author.username);
}

#[tokio::test]
async fn concurrent_creates_with_one_title_get_distinct_slugs() {
    let api = Api::new();
    let author = api.new_user("racer").await;
    let (title, slug) = unique_title("Photo Finish");
    let tag = unique_name("race");
    let mut article = article_with_title(&title);
    article["tagList"] = json!([tag]);

    let replies = join_all((0..8).map(|_| {
        let api = api.clone();
        let token = author.token.clone();
        let article = article.clone();
        tokio::spawn(async move { api.create_article(Some(&token), &article).await })
    }))
    .await;

    let mut created = HashSet::new();
    for reply in replies {
        let reply = reply.expect("task");
        let article = &reply.expect(201)["article"];
        let got = slug_of(article);
        assert!(got.starts_with(&slug), "{got} from {title:?}");
        assert_eq!(article["title"], title);
        created.insert(got);
    }
    assert_eq!(created.len(), 8, "{created:?}");
    let listed = api
        .eventually_get(&format!("/articles?tag={tag}"), None, |r| {
            r.status == 200 && r.body["articlesCount"] == 8
        })
        .await;
    assert_eq!(
        slugs(&listed.body).into_iter().collect::<HashSet<_>>(),
        created
    );
}

// ---------------------------------------------------------------------------------------------
// GET /articles/{slug}
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_an_article_shows_following_and_favorited_for_the_caller() {
    let api = Api::new();
    let author = api.new_user("viewed").await;
    let reader = api.new_user("reader").await;
    let stranger = api.new_user("stranger").await;
    let (title, slug) = unique_title("Seen By Many");
    api.new_article(&author, &title, &[]).await;
    api.follow(&author.username, Some(&reader.token))
        .await
        .expect(200);
    api.favorite(&slug, Some(&reader.token)).await.expect(200);

    let seen = api
        .eventually_article(&slug, Some(&reader.token), |a| {
            a["author"]["following"] == true && a["favorited"] == true
        })
        .await;
    assert_eq!(seen["favoritesCount"], 1);
    assert_eq!(seen["title"], title);

    let anonymous = api
        .eventually_article(&slug, None, |a| a["favoritesCount"] == 1)
        .await;
    assert_eq!(anonymous["favorited"], false);
    assert_eq!(anonymous["author"]["following"], false);
    for token in [&stranger.token, &author.token] {
        let article = api.article(&slug, Some(token)).await;
        let article = &article.expect(200)["article"];
        assert_eq!(article["favorited"], false, "{article:#}");
        assert_eq!(article["favoritesCount"], 1, "{article:#}");
        assert_eq!(article["author"]["following"], false, "{article:#}");
    }
}

#[tokio::test]
async fn an_unknown_slug_is_404() {
    let api = Api::new();
    let user = api.new_user("lost").await;
    let slug = unique_name("no-such-article");

    for token in [None, Some(user.token.as_str())] {
        let reply = api.article(&slug, token).await;
        assert_eq!(
            reply.expect(404),
            &json!({"errors": {"article": ["not found"]}})
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PUT /articles/{slug}
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_author_edits_the_body_and_keeps_the_slug() {
    let api = Api::new();
    let author = api.new_user("editor").await;
    let (title, slug) = unique_title("Work In Progress");
    let tag = unique_name("wip");
    let created = api.new_article(&author, &title, &[&tag]).await;

    let reply = api
        .update_article(&slug, Some(&author.token), &json!({"body": "Finished."}))
        .await;

    let edited = &reply.expect(200)["article"];
    assert_eq!(keys(edited), ARTICLE_KEYS, "{edited:#}");
    assert_eq!(edited["slug"], slug);
    assert_eq!(edited["body"], "Finished.");
    assert_eq!(edited["title"], title);
    assert_eq!(edited["description"], created["description"]);
    assert_eq!(edited["tagList"], json!([tag]));
    assert_eq!(edited["createdAt"], created["createdAt"]);
    assert!(is_timestamp(&edited["updatedAt"]), "{edited:#}");
    assert!(
        edited["updatedAt"].as_str() > created["updatedAt"].as_str(),
        "updatedAt moves: {edited:#}"
    );
    assert_eq!(edited["author"], created["author"]);

    let read = api
        .eventually_article(&slug, None, |a| a["body"] == "Finished.")
        .await;
    assert_eq!(&read, edited);
}

#[tokio::test]
async fn the_author_edits_the_description() {
    let api = Api::new();
    let author = api.new_user("describer").await;
    let (title, slug) = unique_title("Described");
    let created = api.new_article(&author, &title, &[]).await;

    let reply = api
        .update_article(
            &slug,
            Some(&author.token),
            &json!({"description": "Now with a summary."}),
        )
        .await;

    let edited = &reply.expect(200)["article"];
    assert_eq!(edited["description"], "Now with a summary.");
    assert_eq!(edited["body"], created["body"]);
    assert_eq!(edited["slug"], slug);
    api.eventually_article(&slug, None, |a| a["description"] == "Now with a summary.")
        .await;
}

#[tokio::test]
async fn a_new_title_moves_the_slug_and_frees_the_old_one() {
    let api = Api::new();
    let author = api.new_user("retitler").await;
    let newcomer = api.new_user("newcomer").await;
    let (old_title, old_slug) = unique_title("First Draft");
    let (new_title, new_slug) = unique_title("Final Cut");
    let created = api.new_article(&author, &old_title, &[]).await;
    api.eventually_article(&old_slug, None, |_| true).await;

    let reply = api
        .update_article(&old_slug, Some(&author.token), &json!({"title": new_title}))
        .await;

    let edited = &reply.expect(200)["article"];
    assert_eq!(edited["slug"], new_slug);
    assert_eq!(edited["title"], new_title);
    assert_eq!(edited["body"], created["body"]);
    assert_eq!(edited["createdAt"], created["createdAt"]);
    // The write side forgets the old slug at once.
    api.update_article(&old_slug, Some(&author.token), &json!({"body": "x"}))
        .await
        .expect_error(404, "article");

    let read = api
        .eventually_article(&new_slug, None, |a| a["title"] == new_title)
        .await;
    assert_eq!(read["body"], created["body"]);
    api.eventually_get(&format!("/articles/{old_slug}"), None, |r| r.status == 404)
        .await;

    // Someone else's new article with the old title gets the old slug.
    let reused = api.new_article(&newcomer, &old_title, &[]).await;
    assert_eq!(reused["slug"], old_slug);
    let read = api
        .eventually_article(&old_slug, None, |a| {
            a["author"]["username"] == newcomer.username
        })
        .await;
    assert_eq!(read["title"], old_title);
    let moved = api.article(&new_slug, None).await;
    assert_eq!(
        moved.expect(200)["article"]["author"]["username"],
        author.username
    );
}

#[tokio::test]
async fn edit_by_another_user_is_403_and_changes_nothing() {
    let api = Api::new();
    let author = api.new_user("owner").await;
    let intruder = api.new_user("intruder").await;
    let (title, slug) = unique_title("Mine");
    let created = api.new_article(&author, &title, &[]).await;

    let reply = api
        .update_article(
            &slug,
            Some(&intruder.token),
            &json!({"title": "Hijacked", "body": "Hijacked"}),
        )
        .await;

    reply.expect(403);
    assert!(
        reply.body["errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty()),
        "{:#}",
        reply.body
    );
    // A later edit by the author is seen, with nothing of the refused one.
    api.update_article(
        &slug,
        Some(&author.token),
        &json!({"description": "marker"}),
    )
    .await
    .expect(200);
    let read = api
        .eventually_article(&slug, None, |a| a["description"] == "marker")
        .await;
    assert_eq!(read["title"], title);
    assert_eq!(read["body"], created["body"]);
}

#[tokio::test]
async fn edit_without_a_token_is_401() {
    let api = Api::new();
    let author = api.new_user("guarded").await;
    let (title, slug) = unique_title("Guarded");
    api.new_article(&author, &title, &[]).await;

    api.update_article(&slug, None, &json!({"body": "x"}))
        .await
        .expect_unauthorized();
    api.update_article(&slug, Some("garbage"), &json!({"body": "x"}))
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn edit_of_an_unknown_slug_is_404() {
    let api = Api::new();
    let user = api.new_user("lost").await;

    let reply = api
        .update_article(
            &unique_name("no-such-article"),
            Some(&user.token),
            &json!({"body": "x"}),
        )
        .await;

    assert_eq!(
        reply.expect(404),
        &json!({"errors": {"article": ["not found"]}})
    );
}

#[tokio::test]
async fn edit_with_blank_fields_is_422() {
    let api = Api::new();
    let author = api.new_user("blanker").await;
    let (title, slug) = unique_title("Kept");
    api.new_article(&author, &title, &[]).await;

    for field in ["title", "description", "body"] {
        let reply = api
            .update_article(&slug, Some(&author.token), &json!({ field: "  " }))
            .await;
        reply.expect_error(422, field);
    }
    let reply = api
        .update_article(
            &slug,
            Some(&author.token),
            &json!({"title": "", "body": ""}),
        )
        .await;
    reply.expect(422);
    assert_eq!(
        keys(&reply.body["errors"]),
        ["body", "title"],
        "{:#}",
        reply.body
    );
    // The title and its slug are unchanged.
    let edit = api
        .update_article(
            &slug,
            Some(&author.token),
            &json!({"description": "marker"}),
        )
        .await;
    assert_eq!(edit.expect(200)["article"]["title"], title);
    assert_eq!(edit.body["article"]["slug"], slug);
}

// ---------------------------------------------------------------------------------------------
// DELETE /articles/{slug}
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_answers_204_and_the_article_is_gone_everywhere() {
    let api = Api::new();
    let author = api.new_user("deleter").await;
    let fan = api.new_user("mourner").await;
    let (title, slug) = unique_title("Ephemeral");
    let tag = unique_name("ephemeral");
    api.new_article(&author, &title, &[&tag]).await;
    api.add_comment(&slug, Some(&fan.token), "Nice!")
        .await
        .expect(200);
    api.favorite(&slug, Some(&fan.token)).await.expect(200);
    api.eventually_listing(&format!("tag={tag}"), None, &[&slug])
        .await;
    api.eventually_listing(&format!("author={}", author.username), None, &[&slug])
        .await;
    api.eventually_comments(&slug, None, |c| c.len() == 1).await;

    let reply = api.delete_article(&slug, Some(&author.token)).await;

    reply.expect(204);
    assert!(reply.body.is_null(), "{reply:#?}");
    let not_found = json!({"errors": {"article": ["not found"]}});
    // The write side knows at once.
    assert_eq!(
        api.delete_article(&slug, Some(&author.token))
            .await
            .expect(404),
        &not_found
    );
    api.update_article(&slug, Some(&author.token), &json!({"body": "x"}))
        .await
        .expect_error(404, "article");
    api.add_comment(&slug, Some(&fan.token), "Still there?")
        .await
        .expect_error(404, "article");
    api.favorite(&slug, Some(&fan.token))
        .await
        .expect_error(404, "article");

    let gone = api
        .eventually_get(&format!("/articles/{slug}"), None, |r| r.status == 404)
        .await;
    assert_eq!(gone.body, not_found);
    api.eventually_get(&format!("/articles/{slug}/comments"), None, |r| {
        r.status == 404
    })
    .await
    .expect_error(404, "article");
    api.eventually_listing(&format!("tag={tag}"), None, NO_ARTICLES)
        .await;
    api.eventually_listing(&format!("author={}", author.username), None, NO_ARTICLES)
        .await;
    api.eventually_listing(&format!("favorited={}", fan.username), None, NO_ARTICLES)
        .await;
}

#[tokio::test]
async fn delete_by_another_user_is_403_and_keeps_the_article() {
    let api = Api::new();
    let author = api.new_user("keeper").await;
    let intruder = api.new_user("vandal").await;
    let (title, slug) = unique_title("Keep Me");
    api.new_article(&author, &title, &[]).await;

    let reply = api.delete_article(&slug, Some(&intruder.token)).await;

    reply.expect(403);
    assert!(
        reply.body["errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty()),
        "{:#}",
        reply.body
    );
    api.update_article(&slug, Some(&author.token), &json!({"body": "still here"}))
        .await
        .expect(200);
    api.eventually_article(&slug, None, |a| a["body"] == "still here")
        .await;
    api.delete_article(&slug, Some(&author.token))
        .await
        .expect(204);
}

#[tokio::test]
async fn delete_of_an_unknown_slug_is_404() {
    let api = Api::new();
    let user = api.new_user("lost").await;

    let reply = api
        .delete_article(&unique_name("no-such-article"), Some(&user.token))
        .await;

    assert_eq!(
        reply.expect(404),
        &json!({"errors": {"article": ["not found"]}})
    );
}

#[tokio::test]
async fn delete_without_a_token_is_401() {
    let api = Api::new();
    let author = api.new_user("guarded").await;
    let (title, slug) = unique_title("Guarded Delete");
    api.new_article(&author, &title, &[]).await;

    api.delete_article(&slug, None).await.expect_unauthorized();
    api.delete_article(&slug, Some("garbage"))
        .await
        .expect_unauthorized();
    api.eventually_article(&slug, None, |_| true).await;
}
