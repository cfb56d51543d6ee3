//! `GET /tags`: the tags of the articles that exist.

use serde_json::Value;
use tests::{unique_name, unique_title, Api};

/// How many times `tag` is in a tag list.
fn occurrences(tags: &[Value], tag: &str) -> usize {
    tags.iter().filter(|t| t.as_str() == Some(tag)).count()
}

#[tokio::test]
async fn a_used_tag_is_listed() {
    let api = Api::new();
    let author = api.new_user("tagger").await;
    let tag = unique_name("fresh");
    let (title, _) = unique_title("Tagged");
    api.new_article(&author, &title, &[&tag]).await;

    let tags = api.eventually_tags(|t| occurrences(t, &tag) > 0).await;

    assert_eq!(occurrences(&tags, &tag), 1);
    assert!(tags.iter().all(Value::is_string), "{tags:?}");
    let reply = api.get("/tags", None).await;
    let body = reply.expect(200);
    assert_eq!(
        body.as_object()
            .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>()),
        Some(vec!["tags"]),
        "{}",
        reply.shown_body()
    );
}

#[tokio::test]
async fn a_tag_of_two_articles_is_listed_once() {
    let api = Api::new();
    let first = api.new_user("tagger").await;
    let second = api.new_user("tagger").await;
    let tag = unique_name("shared");
    for author in [&first, &second] {
        let (title, _) = unique_title("Shared Tag");
        api.new_article(author, &title, &[&tag]).await;
    }
    api.eventually_get(&format!("/articles?tag={tag}"), None, |r| {
        r.status == 200 && r.body["articlesCount"] == 2
    })
    .await;

    let tags = api.eventually_tags(|t| occurrences(t, &tag) > 0).await;

    assert_eq!(occurrences(&tags, &tag), 1, "{tags:?}");
}

#[tokio::test]
async fn the_tag_only_a_deleted_article_had_goes_away() {
    let api = Api::new();
    let author = api.new_user("pruner").await;
    let only = unique_name("only");
    let shared = unique_name("kept");
    let (doomed_title, doomed) = unique_title("Doomed");
    let (kept_title, _) = unique_title("Survivor");
    api.new_article(&author, &doomed_title, &[&only, &shared])
        .await;
    api.new_article(&author, &kept_title, &[&shared]).await;
    api.eventually_tags(|t| occurrences(t, &only) == 1 && occurrences(t, &shared) == 1)
        .await;

    api.delete_article(&doomed, Some(&author.token))
        .await
        .expect(204);

    api.eventually_tags(|t| occurrences(t, &only) == 0 && occurrences(t, &shared) == 1)
        .await;
}
