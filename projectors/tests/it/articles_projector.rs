//! The articles projector against DynamoDB Local and moto: articles (and their bodies, kept
//! apart), comments and favorites under duplicates, reordering, gaps, poison messages,
//! concurrency and late deliveries.

use std::collections::BTreeSet;

use crate::support::{messages, sns_body, sqs_event, GARBAGE_NOTIFICATION};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use events::article::ArticleEvent;
use events::comment::CommentEvent;
use events::favorite::{favorite_id, FavoriteEvent};
use events::views::article_bodies::ArticleBodyView;
use events::views::articles::ArticleView;
use events::views::comments::CommentView;
use events::views::{self, Item};
use events::StoredEvent;
use futures::future::join_all;
use infra::resources::ARTICLES_PROJECTOR_QUEUE;
use projectors::runtime::Outcome;
use projectors::ArticlesProjector;
use uuid::Uuid;

const CREATED: &str = "2024-01-01T00:00:00.000Z";
const EDITED: &str = "2024-01-02T00:00:00.000Z";
const DELETED: &str = "2024-01-03T00:00:00.000Z";

type Fixture = crate::support::Fixture<ArticlesProjector>;

async fn fixture(tag: &str) -> Fixture {
    Fixture::new(tag, ArticlesProjector::runtime).await
}

fn published(article_id: &str, slug: &str, tags: &[&str]) -> ArticleEvent {
    ArticleEvent::ArticlePublished {
        article_id: article_id.into(),
        author_id: "author".into(),
        slug: slug.into(),
        title: "How to train your dragon".into(),
        description: "Ever wonder how?".into(),
        body: "You have to believe".into(),
        tag_list: tags.iter().map(|t| t.to_string()).collect(),
        created_at: CREATED.into(),
    }
}

fn edited(slug: &str, previous_slug: &str) -> ArticleEvent {
    ArticleEvent::ArticleEdited {
        slug: slug.into(),
        previous_slug: previous_slug.into(),
        author_id: "author".into(),
        title: "Did you train your dragon?".into(),
        description: "Ever wonder how?".into(),
        body: "With all your heart".into(),
        tag_list: vec!["dragons".into(), "training".into()],
        created_at: CREATED.into(),
        updated_at: EDITED.into(),
    }
}

fn deleted(slug: &str) -> ArticleEvent {
    ArticleEvent::ArticleDeleted {
        author_id: "author".into(),
        slug: slug.into(),
        deleted_at: DELETED.into(),
    }
}

fn comment_added(article_id: &str, comment_id: u64, author_id: &str) -> CommentEvent {
    CommentEvent::CommentAdded {
        article_id: article_id.into(),
        comment_id,
        author_id: author_id.into(),
        body: format!("comment {comment_id}"),
        created_at: EDITED.into(),
    }
}

fn comment_deleted(article_id: &str, comment_id: u64, author_id: &str) -> CommentEvent {
    CommentEvent::CommentDeleted {
        article_id: article_id.into(),
        comment_id,
        author_id: author_id.into(),
        deleted_at: DELETED.into(),
    }
}

fn favorited(article_id: &str, user_id: &str) -> FavoriteEvent {
    FavoriteEvent::ArticleFavorited {
        article_id: article_id.into(),
        user_id: user_id.into(),
        favorited_at: EDITED.into(),
    }
}

fn unfavorited(article_id: &str, user_id: &str) -> FavoriteEvent {
    FavoriteEvent::ArticleUnfavorited {
        article_id: article_id.into(),
        user_id: user_id.into(),
        unfavorited_at: DELETED.into(),
    }
}

/// A fresh article id and a slug no other test uses.
fn new_article() -> (String, String) {
    let id = Uuid::new_v4().to_string();
    let slug = format!("dragons-{}", &id[..8]);
    (id, slug)
}

impl Fixture {
    async fn article_events(&self, id: &str, events: Vec<ArticleEvent>) -> Vec<StoredEvent> {
        self.append(events::article::AGGREGATE_TYPE, id, events)
            .await
    }

    async fn comment_events(
        &self,
        article_id: &str,
        events: Vec<CommentEvent>,
    ) -> Vec<StoredEvent> {
        self.append(events::comment::AGGREGATE_TYPE, article_id, events)
            .await
    }

    async fn favorite_events(
        &self,
        article_id: &str,
        user_id: &str,
        events: Vec<FavoriteEvent>,
    ) -> Vec<StoredEvent> {
        self.append(
            events::favorite::AGGREGATE_TYPE,
            &favorite_id(article_id, user_id),
            events,
        )
        .await
    }

    async fn project_all(&self, events: &[StoredEvent]) {
        for event in events {
            self.runtime.project(event).await.expect("projected");
        }
    }

    async fn article_item(&self, article_id: &str) -> Option<Item> {
        crate::support::get_item(
            &self.clients.dynamodb,
            &self.tables.articles,
            "articleId",
            article_id,
        )
        .await
    }

    async fn article(&self, article_id: &str) -> Option<ArticleView> {
        ArticleView::from_item(&self.article_item(article_id).await?)
    }

    /// The article's item in the `article-bodies` table.
    async fn body(&self, article_id: &str) -> Option<ArticleBodyView> {
        let item = crate::support::get_item(
            &self.clients.dynamodb,
            &self.tables.article_bodies,
            "articleId",
            article_id,
        )
        .await?;
        Some(ArticleBodyView::from_item(&item).expect("a body view"))
    }

    /// The article ids the `bySlug` index finds for `slug`.
    async fn by_slug(&self, slug: &str) -> Vec<String> {
        self.clients
            .dynamodb
            .query()
            .table_name(&self.tables.articles)
            .index_name(views::articles::BY_SLUG)
            .key_condition_expression("slug = :s")
            .expression_attribute_values(":s", AttributeValue::S(slug.into()))
            .send()
            .await
            .expect("query bySlug")
            .items()
            .iter()
            .filter_map(|item| views::text(item, "articleId"))
            .collect()
    }

    async fn comments(&self, article_id: &str) -> Vec<CommentView> {
        self.clients
            .dynamodb
            .query()
            .table_name(&self.tables.comments)
            .key_condition_expression("articleId = :a")
            .expression_attribute_values(":a", AttributeValue::S(article_id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("query comments")
            .items()
            .iter()
            .map(|item| CommentView::from_item(item).expect("comment view"))
            .collect()
    }

    async fn favorited_by(&self, article_id: &str) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        let mut pages = self
            .clients
            .dynamodb
            .query()
            .table_name(&self.tables.favorites)
            .key_condition_expression("articleId = :a")
            .expression_attribute_values(":a", AttributeValue::S(article_id.into()))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for item in page.expect("query favorites").items() {
                users.insert(views::text(item, "userId").expect("userId"));
            }
        }
        users
    }
}

#[tokio::test]
async fn publish_edit_and_delete_project_the_article() {
    let f = fixture("lifecycle").await;
    let (id, slug) = new_article();
    let new_slug = format!("{slug}-edited");
    let events = f
        .article_events(
            &id,
            vec![
                published(&id, &slug, &[]),
                edited(&new_slug, &slug),
                deleted(&new_slug),
            ],
        )
        .await;

    f.project_all(&events[..1]).await;
    let view = f.article(&id).await.expect("published");
    assert_eq!(
        view,
        ArticleView {
            article_id: id.clone(),
            slug: slug.clone(),
            title: "How to train your dragon".into(),
            description: "Ever wonder how?".into(),
            tag_list: Vec::new(),
            author_id: "author".into(),
            created_at: CREATED.into(),
            updated_at: CREATED.into(),
            favorites_count: 0,
            last_seq: 1,
        }
    );
    let item = f.article_item(&id).await.expect("item");
    assert_eq!(
        item.get("tagList"),
        Some(&AttributeValue::L(Vec::new())),
        "an empty tag list is stored as an empty list"
    );
    assert!(!item.contains_key("body"), "the body is kept apart");
    assert_eq!(
        f.body(&id).await,
        Some(ArticleBodyView {
            article_id: id.clone(),
            body: "You have to believe".into(),
            last_seq: 1,
        })
    );
    assert_eq!(f.by_slug(&slug).await, vec![id.clone()]);

    f.project_all(&events[1..2]).await;
    let view = f.article(&id).await.expect("edited");
    assert_eq!(view.slug, new_slug);
    assert_eq!(view.title, "Did you train your dragon?");
    let body = f.body(&id).await.expect("the body, edited");
    assert_eq!(
        (body.body.as_str(), body.last_seq),
        ("With all your heart", 2)
    );
    assert!(!f
        .article_item(&id)
        .await
        .expect("item")
        .contains_key("body"));
    assert_eq!(view.tag_list, vec!["dragons", "training"]);
    assert_eq!(view.created_at, CREATED);
    assert_eq!(view.updated_at, EDITED);
    assert_eq!(view.last_seq, 2);
    assert!(f.by_slug(&slug).await.is_empty(), "the old slug is free");
    assert_eq!(f.by_slug(&new_slug).await, vec![id.clone()]);

    f.project_all(&events[2..]).await;
    let tombstone = f.article_item(&id).await.expect("a tombstone stays");
    assert!(ArticleView::from_item(&tombstone).is_none());
    assert_eq!(
        tombstone
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["articleId", "deleted", "lastSeq"])
    );
    assert_eq!(views::number(&tombstone, "lastSeq"), Some(3));
    assert!(f.by_slug(&new_slug).await.is_empty());
    assert_eq!(f.body(&id).await, None, "the body goes with the article");
}

#[tokio::test]
async fn the_same_message_twice_is_applied_once() {
    let f = fixture("dup").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &["a"])])
        .await;
    let favorite = f
        .favorite_events(&id, "fan", vec![favorited(&id, "fan")])
        .await;
    let comments = f
        .comment_events(&id, vec![comment_added(&id, 1, "fan")])
        .await;
    for event in [&article[0], &favorite[0], &comments[0]] {
        assert_eq!(
            f.runtime.project(event).await.expect("first"),
            Outcome::Applied { filled: 0 }
        );
        assert_eq!(
            f.runtime.project(event).await.expect("again"),
            Outcome::Duplicate
        );
    }
    // And all three again in one batch, twice each.
    let batch = messages(&[
        &article[0],
        &favorite[0],
        &comments[0],
        &favorite[0],
        &article[0],
        &comments[0],
    ]);
    let response = f.runtime.handle_sqs(sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    let view = f.article(&id).await.expect("projected");
    assert_eq!(view.favorites_count, 1);
    assert_eq!(view.last_seq, 1);
    assert_eq!(f.body(&id).await.expect("body").last_seq, 1);
    assert_eq!(f.comments(&id).await.len(), 1);
    assert_eq!(
        f.favorited_by(&id).await,
        BTreeSet::from(["fan".to_owned()])
    );
}

#[tokio::test]
async fn any_delivery_order_within_an_aggregate_gives_the_in_order_result() {
    let f = fixture("order").await;
    let orders: Vec<Vec<usize>> = vec![
        vec![4, 3, 2, 1, 0],
        vec![2, 0, 4, 1, 3, 0, 2],
        vec![3, 3, 1, 4, 0, 2, 4],
    ];
    for (n, order) in orders.iter().enumerate() {
        let (id, slug) = new_article();
        let article = f
            .article_events(
                &id,
                vec![
                    published(&id, &slug, &["x"]),
                    edited(&format!("{slug}-2"), &slug),
                ],
            )
            .await;
        let thread = f
            .comment_events(
                &id,
                vec![
                    comment_added(&id, 1, "u1"),
                    comment_added(&id, 2, "u2"),
                    comment_deleted(&id, 1, "u1"),
                    comment_added(&id, 3, "u1"),
                    comment_deleted(&id, 3, "u1"),
                ],
            )
            .await;
        let mut shuffled: Vec<&StoredEvent> = order.iter().map(|&i| &thread[i]).collect();
        shuffled.extend(order.iter().filter(|&&i| i < 2).map(|&i| &article[1 - i]));
        let together = n % 2 == 1;
        let failed = f.deliver(&messages(&shuffled), together).await;
        assert!(failed.is_empty(), "order {order:?}");
        let view = f.article(&id).await.expect("projected");
        assert_eq!(view.slug, format!("{slug}-2"), "order {order:?}");
        assert_eq!(view.last_seq, 2);
        let body = f.body(&id).await.expect("body");
        assert_eq!(
            (body.body.as_str(), body.last_seq),
            ("With all your heart", 2)
        );
        let comments = f.comments(&id).await;
        assert_eq!(
            comments
                .iter()
                .map(|c| (c.comment_id, c.author_id.as_str()))
                .collect::<Vec<_>>(),
            vec![(2, "u2")],
            "order {order:?}"
        );
    }
}

#[tokio::test]
async fn a_gap_is_filled_from_the_events_table() {
    let f = fixture("gap").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(
            &id,
            vec![
                published(&id, &slug, &[]),
                edited(&format!("{slug}-2"), &slug),
            ],
        )
        .await;
    let thread = f
        .comment_events(
            &id,
            vec![
                comment_added(&id, 1, "u1"),
                comment_added(&id, 2, "u2"),
                comment_deleted(&id, 1, "u1"),
            ],
        )
        .await;
    let favorite = f
        .favorite_events(
            &id,
            "fan",
            vec![
                favorited(&id, "fan"),
                unfavorited(&id, "fan"),
                favorited(&id, "fan"),
            ],
        )
        .await;
    assert_eq!(
        f.runtime.project(&article[1]).await.expect("edit first"),
        Outcome::Applied { filled: 1 }
    );
    assert_eq!(
        f.runtime
            .project(&thread[2])
            .await
            .expect("last comment event first"),
        Outcome::Applied { filled: 2 }
    );
    assert_eq!(
        f.runtime
            .project(&favorite[2])
            .await
            .expect("last favorite event first"),
        Outcome::Applied { filled: 2 }
    );
    for event in article.iter().chain(&thread).chain(&favorite) {
        assert_eq!(
            f.runtime.project(event).await.expect("late copies"),
            Outcome::Duplicate
        );
    }
    let view = f.article(&id).await.expect("projected");
    assert_eq!(view.slug, format!("{slug}-2"));
    assert_eq!(view.favorites_count, 1);
    assert_eq!(f.body(&id).await.expect("body").last_seq, 2);
    assert_eq!(
        f.comments(&id)
            .await
            .iter()
            .map(|c| c.comment_id)
            .collect::<Vec<_>>(),
        vec![2]
    );
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_its_batch_is_applied() {
    let f = fixture("poison").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[])])
        .await;
    let favorite = f
        .favorite_events(&id, "fan", vec![favorited(&id, "fan")])
        .await;
    let mut unknown = favorite[0].clone();
    unknown.aggregate_id = favorite_id(&id, "someone-else");
    unknown.event_type = "ArticleAdored".into();
    let mut bad_payload = article[0].clone();
    bad_payload.aggregate_id = Uuid::new_v4().to_string();
    bad_payload.payload = serde_json::json!({"slug": 42});
    let batch = vec![
        ("poison-1".to_owned(), "this is not an event".to_owned()),
        ("good-1".to_owned(), sns_body(&article[0])),
        ("poison-2".to_owned(), sns_body(&unknown)),
        ("good-2".to_owned(), sns_body(&favorite[0])),
        ("poison-3".to_owned(), sns_body(&bad_payload)),
    ];
    let response = f.runtime.handle_sqs(sqs_event(&batch)).await;
    assert_eq!(
        crate::support::failed(&response),
        BTreeSet::from(["poison-1".into(), "poison-2".into(), "poison-3".into()])
    );
    let view = f.article(&id).await.expect("projected");
    assert_eq!(view.favorites_count, 1);
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_its_receive_limit() {
    let f = fixture("dlq").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[])])
        .await;
    let thread = f
        .comment_events(&id, vec![comment_added(&id, 1, "u1")])
        .await;
    let queue = f.queue(ARTICLES_PROJECTOR_QUEUE.name);
    f.send(&queue, GARBAGE_NOTIFICATION).await;
    for event in article.iter().chain(&thread) {
        f.send(&queue, &sns_body(event)).await;
    }

    let dead = f.poll_until_dead_letter(&queue).await;
    assert!(dead.body().unwrap_or_default().contains("garbage"));
    assert!(f.article(&id).await.is_some());
    assert_eq!(f.comments(&id).await.len(), 1);
}

#[tokio::test]
async fn concurrent_and_duplicated_favorites_count_exactly() {
    let f = fixture("favcount").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[])])
        .await;
    f.project_all(&article).await;

    // 50 users; every third one favorited, unfavorited and favorited again.
    let mut events = Vec::new();
    for i in 0..50 {
        let user = format!("user-{i:02}");
        let history = if i % 3 == 0 {
            vec![
                favorited(&id, &user),
                unfavorited(&id, &user),
                favorited(&id, &user),
            ]
        } else {
            vec![favorited(&id, &user)]
        };
        events.extend(f.favorite_events(&id, &user, history).await);
    }
    // Every event twice, newest first, in SQS-sized batches handled at once (like several
    // Lambda instances), so copies of one stream race each other and the count is contended.
    let mut deliveries: Vec<&StoredEvent> = events.iter().rev().chain(events.iter()).collect();
    deliveries.rotate_left(7);
    let batches: Vec<SqsEvent> = deliveries
        .chunks(10)
        .map(|chunk| sqs_event(&messages(chunk)))
        .collect();
    let responses = join_all(batches.into_iter().map(|batch| f.runtime.handle_sqs(batch))).await;
    let failures: usize = responses.iter().map(|r| r.batch_item_failures.len()).sum();
    assert_eq!(failures, 0, "no delivery failed");

    let view = f.article(&id).await.expect("projected");
    assert_eq!(view.favorites_count, 50);
    assert_eq!(f.favorited_by(&id).await.len(), 50);

    let more = f
        .favorite_events(&id, "user-07", vec![unfavorited(&id, "user-07")])
        .await;
    f.project_all(&more).await;
    f.project_all(&more).await;
    assert_eq!(f.article(&id).await.expect("projected").favorites_count, 49);
    assert!(!f.favorited_by(&id).await.contains("user-07"));
}

#[tokio::test]
async fn a_favorite_projected_before_its_article_still_counts() {
    let f = fixture("favfirst").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &["a", "b"])])
        .await;
    let favorite = f
        .favorite_events(&id, "early", vec![favorited(&id, "early")])
        .await;
    f.project_all(&favorite).await;
    let early = f.article_item(&id).await.expect("a count-only item");
    assert!(
        ArticleView::from_item(&early).is_none(),
        "not an article yet"
    );
    assert!(f.by_slug(&slug).await.is_empty());
    assert_eq!(f.body(&id).await, None, "no body without the article");

    f.project_all(&article).await;
    let view = f.article(&id).await.expect("published");
    assert_eq!(view.favorites_count, 1);
    assert_eq!(view.tag_list, vec!["a", "b"]);
    assert_eq!(f.by_slug(&slug).await, vec![id.clone()]);
    assert_eq!(f.body(&id).await.expect("body").body, "You have to believe");
}

#[tokio::test]
async fn comments_are_added_and_deleted() {
    let f = fixture("comments").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[])])
        .await;
    f.project_all(&article).await;
    let thread = f
        .comment_events(
            &id,
            vec![comment_added(&id, 1, "u1"), comment_added(&id, 2, "u2")],
        )
        .await;
    f.project_all(&thread).await;
    assert_eq!(
        f.comments(&id).await,
        vec![
            CommentView {
                article_id: id.clone(),
                comment_id: 1,
                author_id: "u1".into(),
                body: "comment 1".into(),
                created_at: EDITED.into(),
                updated_at: EDITED.into(),
            },
            CommentView {
                article_id: id.clone(),
                comment_id: 2,
                author_id: "u2".into(),
                body: "comment 2".into(),
                created_at: EDITED.into(),
                updated_at: EDITED.into(),
            },
        ]
    );
    let removal = f
        .comment_events(&id, vec![comment_deleted(&id, 1, "u1")])
        .await;
    f.project_all(&removal).await;
    assert_eq!(
        f.comments(&id)
            .await
            .iter()
            .map(|c| c.comment_id)
            .collect::<Vec<_>>(),
        vec![2]
    );
    // Comments never touch the article item.
    assert_eq!(f.article(&id).await.expect("article").last_seq, 1);
}

#[tokio::test]
async fn a_deleted_article_takes_its_comments_and_favorites_with_it() {
    let f = fixture("purge").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[]), deleted(&slug)])
        .await;
    f.project_all(&article[..1]).await;
    // More comments and favorites than one BatchWriteItem takes.
    let thread = f
        .comment_events(&id, (1..=30).map(|i| comment_added(&id, i, "u1")).collect())
        .await;
    f.project_all(&thread).await;
    for i in 0..20 {
        let user = format!("fan-{i}");
        let events = f
            .favorite_events(&id, &user, vec![favorited(&id, &user)])
            .await;
        f.project_all(&events).await;
    }
    assert_eq!(f.comments(&id).await.len(), 30);
    assert_eq!(f.article(&id).await.expect("live").favorites_count, 20);

    f.project_all(&article[1..]).await;
    let tombstone = f.article_item(&id).await.expect("tombstone");
    assert!(ArticleView::from_item(&tombstone).is_none());
    assert!(f.comments(&id).await.is_empty());
    assert!(f.favorited_by(&id).await.is_empty());
    assert!(f.by_slug(&slug).await.is_empty());
    assert_eq!(f.body(&id).await, None);
}

#[tokio::test]
async fn comments_and_favorites_projected_after_the_delete_leave_nothing_behind() {
    let f = fixture("late").await;
    let (id, slug) = new_article();
    let article = f
        .article_events(&id, vec![published(&id, &slug, &[]), deleted(&slug)])
        .await;
    let thread = f
        .comment_events(&id, vec![comment_added(&id, 1, "u1")])
        .await;
    let favorite = f
        .favorite_events(&id, "late-fan", vec![favorited(&id, "late-fan")])
        .await;
    f.project_all(&article).await;

    assert_eq!(
        f.runtime.project(&thread[0]).await.expect("late comment"),
        Outcome::Applied { filled: 0 }
    );
    assert_eq!(
        f.runtime
            .project(&favorite[0])
            .await
            .expect("late favorite"),
        Outcome::Applied { filled: 0 }
    );
    // And what comes after them in their streams.
    let thread_more = f
        .comment_events(&id, vec![comment_deleted(&id, 1, "u1")])
        .await;
    let favorite_more = f
        .favorite_events(&id, "late-fan", vec![unfavorited(&id, "late-fan")])
        .await;
    f.project_all(&thread_more).await;
    f.project_all(&favorite_more).await;

    assert!(f.comments(&id).await.is_empty());
    assert!(f.favorited_by(&id).await.is_empty());
    let tombstone = f.article_item(&id).await.expect("tombstone");
    assert!(ArticleView::from_item(&tombstone).is_none());
    assert!(
        !tombstone.contains_key("favoritesCount"),
        "a late favorite does not count"
    );
    assert_eq!(views::number(&tombstone, "lastSeq"), Some(2));
    assert_eq!(f.body(&id).await, None);
    // The late events are done with: their checkpoints moved.
    for event in [&thread_more[0], &favorite_more[0]] {
        assert_eq!(
            f.runtime
                .last_applied(&event.stream_key())
                .await
                .expect("checkpoint"),
            event.sequence
        );
    }
}

#[tokio::test]
async fn catch_up_applies_what_no_message_brought() {
    let f = fixture("catchup").await;
    let (id, slug) = new_article();
    f.article_events(&id, vec![published(&id, &slug, &[])])
        .await;
    f.comment_events(&id, vec![comment_added(&id, 1, "u1")])
        .await;
    f.favorite_events(&id, "fan", vec![favorited(&id, "fan")])
        .await;
    assert!(f.article_item(&id).await.is_none());
    let report = f.runtime.catch_up().await.expect("catch up");
    assert_eq!(report.applied, 3);
    assert_eq!(report.streams, 3);
    assert_eq!(f.article(&id).await.expect("projected").favorites_count, 1);
    assert!(f.body(&id).await.is_some());
    assert_eq!(f.comments(&id).await.len(), 1);
    assert_eq!(f.runtime.catch_up().await.expect("again").applied, 0);
}
