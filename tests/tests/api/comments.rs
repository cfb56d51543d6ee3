//! `GET`/`POST /articles/{slug}/comments` and `DELETE /articles/{slug}/comments/{id}`.

use serde_json::{json, Value};
use tests::{is_timestamp, unique_name, unique_title, Api, TestUser};

/// Publishes an article by `author` and returns its slug.
async fn article_by(api: &Api, author: &TestUser) -> String {
    let (title, slug) = unique_title("Discussed");
    api.new_article(author, &title, &[]).await;
    slug
}

/// Comments on `slug` as `user`, asserting the 200; returns the `comment` object.
async fn comment(api: &Api, slug: &str, user: &TestUser, body: &str) -> Value {
    api.add_comment(slug, Some(&user.token), body)
        .await
        .expect(200)["comment"]
        .clone()
}

/// The `id`s of a list of comments, in order.
fn ids(comments: &[Value]) -> Vec<u64> {
    comments.iter().filter_map(|c| c["id"].as_u64()).collect()
}

#[tokio::test]
async fn a_comment_is_answered_with_its_id_times_body_and_author() {
    let api = Api::new();
    let author = api.new_user("host").await;
    let commenter = api.new_user("commenter").await;
    let slug = article_by(&api, &author).await;

    let reply = api
        .add_comment(&slug, Some(&commenter.token), "Thank you so much!")
        .await;

    let body = reply.expect(200);
    let comment = &body["comment"];
    let mut keys: Vec<&String> = comment
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["author", "body", "createdAt", "id", "updatedAt"],
        "{body:#}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body:#}");
    assert_eq!(comment["id"], 1, "ids are integers from 1: {comment:#}");
    assert_eq!(comment["body"], "Thank you so much!");
    assert!(is_timestamp(&comment["createdAt"]), "{comment:#}");
    assert_eq!(comment["updatedAt"], comment["createdAt"]);
    assert_eq!(
        comment["author"],
        json!({"username": commenter.username, "bio": "", "image": "", "following": false})
    );
}

#[tokio::test]
async fn comment_ids_count_from_one_per_article() {
    let api = Api::new();
    let author = api.new_user("counted").await;
    let first = article_by(&api, &author).await;
    let second = article_by(&api, &author).await;

    let mut got = Vec::new();
    for n in 1..=3 {
        got.push(comment(&api, &first, &author, &format!("comment {n}")).await["id"].clone());
    }
    let other = comment(&api, &second, &author, "elsewhere").await;

    assert_eq!(got, [json!(1), json!(2), json!(3)]);
    assert_eq!(other["id"], 1);
}

#[tokio::test]
async fn comments_are_listed_oldest_first_with_the_callers_view_of_their_authors() {
    let api = Api::new();
    let author = api.new_user("op").await;
    let guest = api.new_user("guest").await;
    let reader = api.new_user("follower").await;
    let slug = article_by(&api, &author).await;
    let posted = vec![
        comment(&api, &slug, &author, "First!").await,
        comment(&api, &slug, &guest, "Second.").await,
        comment(&api, &slug, &author, "Third.").await,
    ];
    api.follow(&guest.username, Some(&reader.token))
        .await
        .expect(200);

    // Anonymous readers see exactly what was answered to each commenter.
    let listed = api.eventually_comments(&slug, None, |c| c.len() == 3).await;
    assert_eq!(listed, posted);

    let seen = api
        .eventually_comments(&slug, Some(&reader.token), |c| {
            c.len() == 3 && c[1]["author"]["following"] == true
        })
        .await;
    assert_eq!(ids(&seen), [1, 2, 3]);
    assert_eq!(seen[0]["author"]["following"], false);
    assert_eq!(seen[2]["author"]["following"], false);
    assert_eq!(seen[1]["author"]["username"], guest.username);
    assert_eq!(seen[1]["body"], "Second.");
    for comment in &seen {
        assert!(is_timestamp(&comment["createdAt"]), "{comment:#}");
    }
}

#[tokio::test]
async fn an_article_without_comments_lists_none() {
    let api = Api::new();
    let author = api.new_user("quiet").await;
    let slug = article_by(&api, &author).await;
    api.eventually_article(&slug, None, |_| true).await;

    let reply = api
        .eventually_get(&format!("/articles/{slug}/comments"), None, |r| {
            r.status == 200
        })
        .await;

    assert_eq!(reply.body, json!({"comments": []}));
}

#[tokio::test]
async fn comments_of_an_unknown_article_are_404() {
    let api = Api::new();
    let user = api.new_user("lost").await;
    let slug = unique_name("no-such-article");

    for token in [None, Some(user.token.as_str())] {
        assert_eq!(
            api.comments(&slug, token).await.expect(404),
            &json!({"errors": {"article": ["not found"]}})
        );
    }
    api.add_comment(&slug, Some(&user.token), "Hello?")
        .await
        .expect_error(404, "article");
    api.delete_comment(&slug, "1", Some(&user.token))
        .await
        .expect_error(404, "article");
}

#[tokio::test]
async fn comment_without_a_token_is_401() {
    let api = Api::new();
    let author = api.new_user("closed").await;
    let slug = article_by(&api, &author).await;
    comment(&api, &slug, &author, "mine").await;

    api.add_comment(&slug, None, "anonymous")
        .await
        .expect_unauthorized();
    api.add_comment(&slug, Some("garbage"), "anonymous")
        .await
        .expect_unauthorized();
    api.delete_comment(&slug, "1", None)
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn a_blank_comment_is_422_and_creates_nothing() {
    let api = Api::new();
    let author = api.new_user("blank").await;
    let slug = article_by(&api, &author).await;

    for blank in ["", "   "] {
        api.add_comment(&slug, Some(&author.token), blank)
            .await
            .expect_error(422, "body");
    }
    api.post(
        &format!("/articles/{slug}/comments"),
        Some(&author.token),
        &json!({"comment": {}}),
    )
    .await
    .expect_error(422, "body");

    let first = comment(&api, &slug, &author, "Finally something").await;
    assert_eq!(first["id"], 1, "the refused comments took no id");
    let listed = api
        .eventually_comments(&slug, None, |c| !c.is_empty())
        .await;
    assert_eq!(listed, [first]);
}

#[tokio::test]
async fn delete_a_comment_answers_204_and_removes_only_it() {
    let api = Api::new();
    let author = api.new_user("moderated").await;
    let slug = article_by(&api, &author).await;
    let kept = comment(&api, &slug, &author, "keep me").await;
    comment(&api, &slug, &author, "delete me").await;
    api.eventually_comments(&slug, None, |c| c.len() == 2).await;

    let reply = api.delete_comment(&slug, "2", Some(&author.token)).await;

    reply.expect(204);
    assert!(reply.body.is_null(), "{reply:#?}");
    let listed = api.eventually_comments(&slug, None, |c| c.len() == 1).await;
    assert_eq!(listed, [kept]);
    // Deleting it again finds nothing.
    api.delete_comment(&slug, "2", Some(&author.token))
        .await
        .expect_error(404, "comment");
    // Ids are not reused.
    let next = comment(&api, &slug, &author, "after the deletion").await;
    assert_eq!(next["id"], 3);
    api.eventually_comments(&slug, None, |c| ids(c) == [1, 3])
        .await;
}

#[tokio::test]
async fn deleting_someone_elses_comment_is_403() {
    let api = Api::new();
    let author = api.new_user("talker").await;
    let troll = api.new_user("troll").await;
    let slug = article_by(&api, &author).await;
    let kept = comment(&api, &slug, &author, "my words").await;

    let reply = api.delete_comment(&slug, "1", Some(&troll.token)).await;

    reply.expect(403);
    assert!(
        reply.body["errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty()),
        "{:#}",
        reply.body
    );
    // A later comment is seen, and the first one with it.
    comment(&api, &slug, &troll, "marker").await;
    let listed = api.eventually_comments(&slug, None, |c| c.len() == 2).await;
    assert_eq!(listed[0], kept);
}

#[tokio::test]
async fn deleting_an_unknown_comment_id_is_404() {
    let api = Api::new();
    let author = api.new_user("ids").await;
    let slug = article_by(&api, &author).await;
    comment(&api, &slug, &author, "the only one").await;

    api.delete_comment(&slug, "2", Some(&author.token))
        .await
        .expect_error(404, "comment");
    api.delete_comment(&slug, "99999999999", Some(&author.token))
        .await
        .expect_error(404, "comment");
    for id in ["abc", "-1", "1.5", "0x1"] {
        let reply = api.delete_comment(&slug, id, Some(&author.token)).await;
        assert_eq!(reply.status, 404, "id {id:?}: {reply:#?}");
        assert!(
            reply.body["errors"]
                .as_object()
                .is_some_and(|e| !e.is_empty()),
            "id {id:?}: {reply:#?}"
        );
    }
    // A comment id of another article is no comment of this one.
    let other = article_by(&api, &author).await;
    api.delete_comment(&other, "1", Some(&author.token))
        .await
        .expect_error(404, "comment");
    api.eventually_comments(&slug, None, |c| ids(c) == [1])
        .await;
}
