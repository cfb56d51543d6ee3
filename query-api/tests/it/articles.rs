//! Article, comment, tag and feed reads against DynamoDB Local and an in-RAM search index, seeded
//! directly with read-model items: answers, flags, and how many DynamoDB requests each costs
//! (counted by a [`DynamoMeter`] on the API's client, per operation).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::config::{JwtSettings, TableNames};
use common::jwt::JwtKeys;
use events::views::{
    article_bodies, articles, comments, favorites, feed_articles, feeds, follows, users, Item,
};
use local_aws::meter::{DynamoMeter, Tally};
use query_api::{AppState, BatchKey};
use search::embedded::EmbeddedIndex;
use search::{ArticleDoc, SearchIndex};
use serde_json::{json, Value};
use tower::ServiceExt;

const JWT_SECRET: &[u8] = b"articles-test-secret-0123456789-abcdefghij";
const ARTICLES: usize = 25;
const AUTHORS: usize = 5;
/// The caller follows these authors...
const FOLLOWED_AUTHORS: [usize; 2] = [0, 1];
/// ... and favorites these articles.
const FAVORITED: [usize; 4] = [3, 5, 10, 20];
/// An article the search index still has but the articles table holds as a tombstone (the
/// two projections converge independently); the oldest of all.
const GHOST: &str = "ghost";

struct Fixture {
    app: Router,
    state: AppState,
    /// Counts the requests of the API's DynamoDB client (not the seeding client's).
    meter: DynamoMeter,
    /// The seeding client (not metered).
    seeder: Client,
    tables: TableNames,
    /// A name part unique to this run (usernames, slugs).
    run: String,
    token: String,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn item<const N: usize>(attributes: [(&str, AttributeValue); N]) -> Item {
    attributes
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

impl Fixture {
    fn author_id(&self, i: usize) -> String {
        format!("{}user{i}", self.run)
    }
    fn author_name(&self, i: usize) -> String {
        format!("{}author{i}", self.run)
    }
    fn caller_id(&self) -> String {
        format!("{}caller", self.run)
    }
    fn caller_name(&self) -> String {
        format!("{}reader", self.run)
    }
    fn article_id(&self, i: usize) -> String {
        format!("{}article{i:02}", self.run)
    }
    fn slug(&self, i: usize) -> String {
        format!("{}-slug-{i:02}", self.run)
    }
    /// Article `i` is by author `i % 5`, one minute after article `i - 1`.
    fn author_of(i: usize) -> usize {
        i % AUTHORS
    }
    fn created_at(i: usize) -> String {
        format!("2024-01-01T00:{:02}:00.000Z", i + 1)
    }
    fn tags(i: usize) -> Vec<String> {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        vec!["all".to_owned(), parity.to_owned()]
    }

    /// The answer to a GET, and the DynamoDB requests it cost.
    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value, Tally) {
        self.meter.take();
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Token {token}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, self.meter.take())
    }

    /// Seeds a published article as the projectors write it (its `articles` item and its body
    /// item) and as the search projector indexes it.
    async fn publish(&self, article: &Seeded<'_>) {
        let article_item = item([
            (articles::ARTICLE_ID, s(article.id)),
            (articles::SLUG, s(article.slug)),
            (articles::TITLE, s(article.title)),
            (articles::DESCRIPTION, s(article.description)),
            (
                articles::TAG_LIST,
                AttributeValue::L(article.tags.iter().map(|t| s(t)).collect()),
            ),
            (articles::AUTHOR_ID, s(article.author_id)),
            (articles::CREATED_AT, s(article.created_at)),
            (articles::UPDATED_AT, s(article.created_at)),
            (articles::FAVORITES_COUNT, n(article.favorites_count)),
            (articles::LAST_SEQ, n(1)),
        ]);
        put(&self.seeder, &self.tables.articles, article_item).await;
        let body = item([
            (article_bodies::ARTICLE_ID, s(article.id)),
            (article_bodies::BODY, s(article.body)),
            (article_bodies::LAST_SEQ, n(1)),
        ]);
        put(&self.seeder, &self.tables.article_bodies, body).await;
        let doc = ArticleDoc {
            article_id: article.id.to_owned(),
            author_id: article.author_id.to_owned(),
            slug: article.slug.to_owned(),
            title: article.title.to_owned(),
            description: article.description.to_owned(),
            tag_list: article.tags.to_vec(),
            created_at: article.created_at.to_owned(),
            updated_at: article.created_at.to_owned(),
        };
        self.state.search.upsert(&doc, 1).await.expect("index");
    }
}

/// An article to seed with [`Fixture::publish`].
struct Seeded<'a> {
    id: &'a str,
    slug: &'a str,
    title: &'a str,
    description: &'a str,
    body: &'a str,
    tags: &'a [String],
    author_id: &'a str,
    created_at: &'a str,
    favorites_count: u64,
}

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

async fn fixture(tag: &str) -> Fixture {
    let prefix = local_aws::testkit::unique_prefix(tag);
    let (clients, _provisioned) = local_aws::testkit::provisioned(&prefix).await;
    let tables = TableNames::with_prefix(&prefix);
    let jwt = JwtSettings::new(JWT_SECRET.to_vec(), Duration::from_secs(600)).expect("jwt");
    let search = SearchIndex::Embedded(EmbeddedIndex::in_ram().expect("search index"));
    search.ensure_index().await.expect("ensure index");
    let meter = DynamoMeter::new();
    let metered = meter.attach(&clients.dynamodb);
    // The registry of projection versions is read once per TTL per process, not per request:
    // read it now and trust it for the test, so that the tallies below are each request's own.
    let state = AppState::new(&metered, &tables, &jwt, search.clone())
        .with_version_ttl(Duration::from_secs(3600));
    state.active.versions().await.expect("projection versions");
    meter.take();
    let run = prefix.trim_end_matches('-').to_owned();
    let mut fixture = Fixture {
        app: query_api::router(state.clone()),
        state,
        meter,
        seeder: clients.dynamodb.clone(),
        tables,
        run,
        token: String::new(),
    };
    fixture.token = JwtKeys::new(&jwt)
        .issue(&fixture.caller_id())
        .expect("token");
    seed(&fixture, &clients.dynamodb, &search).await;
    fixture
}

async fn seed(f: &Fixture, client: &Client, search: &SearchIndex) {
    let t = &f.tables;
    let mut people: Vec<(String, String)> = (0..AUTHORS)
        .map(|i| (f.author_id(i), f.author_name(i)))
        .collect();
    people.push((f.caller_id(), f.caller_name()));
    for (id, name) in people {
        let user = item([
            (users::USER_ID, s(&id)),
            (users::EMAIL, s(&format!("{name}@example.com"))),
            (users::USERNAME, s(&name)),
            (users::BIO, s(&format!("bio of {name}"))),
            (users::IMAGE, s("")),
            (users::LAST_SEQ, n(1)),
        ]);
        put(client, &t.users, user).await;
    }
    for i in 0..ARTICLES {
        f.publish(&Seeded {
            id: &f.article_id(i),
            slug: &f.slug(i),
            title: &format!("Title {i}"),
            description: &format!("Description {i}"),
            body: &format!("Body {i}"),
            tags: &Fixture::tags(i),
            author_id: &f.author_id(Fixture::author_of(i)),
            created_at: &Fixture::created_at(i),
            favorites_count: i as u64 % 3,
        })
        .await;
    }
    // The ghost: deleted in the articles table, not yet in the search index.
    let ghost_id = format!("{}{GHOST}", f.run);
    let tombstone = item([
        (articles::ARTICLE_ID, s(&ghost_id)),
        (articles::DELETED, AttributeValue::Bool(true)),
        (articles::LAST_SEQ, n(2)),
    ]);
    put(client, &t.articles, tombstone).await;
    let ghost = ArticleDoc {
        article_id: ghost_id,
        author_id: f.author_id(0),
        slug: format!("{}-ghost", f.run),
        title: "Ghost".into(),
        description: String::new(),
        tag_list: vec!["all".into()],
        created_at: "2023-12-31T00:00:00.000Z".into(),
        updated_at: "2023-12-31T00:00:00.000Z".into(),
    };
    search.upsert(&ghost, 1).await.expect("index");
    // An item that only counts favorites so far: never listed, never found by slug.
    let early = item([
        (articles::ARTICLE_ID, s(&format!("{}early", f.run))),
        (articles::FAVORITES_COUNT, n(1)),
    ]);
    put(client, &t.articles, early).await;
    for a in FOLLOWED_AUTHORS {
        let follow = item([
            (follows::FOLLOWER_ID, s(&f.caller_id())),
            (follows::FOLLOWEE_ID, s(&f.author_id(a))),
            (follows::SEQ, n(1)),
        ]);
        put(client, &t.follows, follow).await;
    }
    // Someone else's follow and favorite, which must not show as the caller's.
    let other = item([
        (follows::FOLLOWER_ID, s(&f.author_id(0))),
        (follows::FOLLOWEE_ID, s(&f.author_id(2))),
        (follows::SEQ, n(1)),
    ]);
    put(client, &t.follows, other).await;
    let other = item([
        (favorites::ARTICLE_ID, s(&f.article_id(2))),
        (favorites::USER_ID, s(&f.author_id(0))),
        (favorites::SEQ, n(1)),
    ]);
    put(client, &t.favorites, other).await;
    for i in FAVORITED {
        let favorite = item([
            (favorites::ARTICLE_ID, s(&f.article_id(i))),
            (favorites::USER_ID, s(&f.caller_id())),
            (favorites::SEQ, n(1)),
        ]);
        put(client, &t.favorites, favorite).await;
    }
    // Three comments on article 0, written out of order, by authors 1, 2, 1.
    for (id, author) in [(3, 1), (1, 1), (2, 2)] {
        let comment = item([
            (comments::ARTICLE_ID, s(&f.article_id(0))),
            (comments::COMMENT_ID, n(id)),
            (comments::AUTHOR_ID, s(&f.author_id(author))),
            (comments::BODY, s(&format!("Comment {id}"))),
            (
                comments::CREATED_AT,
                s(&Fixture::created_at(30 + id as usize)),
            ),
            (
                comments::UPDATED_AT,
                s(&Fixture::created_at(30 + id as usize)),
            ),
            (comments::SEQ, n(id)),
        ]);
        put(client, &t.comments, comment).await;
    }
}

fn slugs(body: &Value) -> Vec<String> {
    body["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .map(|a| a["slug"].as_str().expect("slug").to_owned())
        .collect()
}

/// The slugs of articles `from` down to `to` (newest first).
fn newest_first(f: &Fixture, from: usize, to: usize) -> Vec<String> {
    (to..=from).rev().map(|i| f.slug(i)).collect()
}

#[tokio::test]
async fn a_page_costs_one_batch_whatever_its_size_and_flags_follow_the_caller() {
    let f = fixture("qrylist").await;
    let total = ARTICLES as u64 + 1;

    let (status, body, tally) = f.get("/api/articles", Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("GET /api/articles (20, with a token): {tally:?}");
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1",
        "one BatchGetItem for the whole page"
    );
    assert!(tally.read_units > 0.0, "{tally:?}");
    assert_eq!(tally.write_units, 0.0, "{tally:?}");
    assert_eq!(body["articlesCount"], total, "the search total");
    assert_eq!(slugs(&body), newest_first(&f, 24, 5));
    for article in body["articles"].as_array().expect("articles") {
        let slug = article["slug"].as_str().expect("slug");
        let i: usize = slug
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("i");
        let author = Fixture::author_of(i);
        assert!(article.get("body").is_none(), "lists leave the body out");
        assert_eq!(article["title"], format!("Title {i}"));
        assert_eq!(article["tagList"], json!(Fixture::tags(i)));
        assert_eq!(article["createdAt"], Fixture::created_at(i));
        assert_eq!(
            article["favoritesCount"],
            i as u64 % 3,
            "from the articles table"
        );
        assert_eq!(article["favorited"], FAVORITED.contains(&i), "{slug}");
        assert_eq!(
            article["author"],
            json!({
                "username": f.author_name(author),
                "bio": format!("bio of {}", f.author_name(author)),
                "image": "",
                "following": FOLLOWED_AUTHORS.contains(&author),
            })
        );
    }

    // Without a token: the same page, no flags, still one request.
    let (status, anonymous, tally) = f.get("/api/articles", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tally.operations(), "BatchGetItem×1");
    assert!(tally.read_units > 0.0, "{tally:?}");
    assert_eq!(slugs(&anonymous), slugs(&body));
    assert!(anonymous["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .all(|a| a["favorited"] == false && a["author"]["following"] == false));

    // The page size does not change the cost, with or without a token (above 100 is clamped).
    for limit in [1, 5, 20, 25, 100, 1000] {
        for token in [Some(f.token.as_str()), None] {
            let uri = format!("/api/articles?limit={limit}");
            let (status, body, tally) = f.get(&uri, token).await;
            let case = format!("limit={limit}, token: {}", token.is_some());
            assert_eq!(status, StatusCode::OK, "{case}: {body}");
            assert_eq!(tally.operations(), "BatchGetItem×1", "{case}");
            assert!(tally.read_units > 0.0, "{case}: {tally:?}");
            assert_eq!(body["articlesCount"], total);
            assert_eq!(
                slugs(&body).len(),
                limit.min(ARTICLES),
                "{case}: the ghost is left out"
            );
        }
    }

    // The last page: the ghost (in search, deleted in the table) is left out.
    let (_, body, tally) = f.get("/api/articles?offset=20&limit=10", None).await;
    assert_eq!(slugs(&body), newest_first(&f, 4, 0));
    assert_eq!(body["articlesCount"], total);
    assert_eq!(tally.operations(), "BatchGetItem×1");
    // Past the end: no DynamoDB request at all.
    let (_, body, tally) = f.get("/api/articles?offset=200", None).await;
    assert_eq!(body, json!({"articles": [], "articlesCount": total}));
    assert_eq!(tally, Tally::default(), "no request");
}

#[tokio::test]
async fn filters_resolve_usernames_then_cost_one_batch() {
    let f = fixture("qryfilter").await;

    let uri = format!("/api/articles?author={}", f.author_name(1));
    let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(slugs(&body), [21, 16, 11, 6, 1].map(|i| f.slug(i)));
    assert_eq!(body["articlesCount"], 5);
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×1",
        "byUsername + BatchGetItem"
    );
    assert!(tally.read_units > 0.0, "{tally:?}");

    let uri = format!("/api/articles?favorited={}", f.caller_name());
    let (status, body, tally) = f.get(&uri, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(slugs(&body), [20, 10, 5, 3].map(|i| f.slug(i)));
    assert_eq!(body["articlesCount"], 4);
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×2",
        "byUsername + byUser + BatchGetItem"
    );

    let (status, body, _) = f.get("/api/articles?tag=odd&tag=even", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["errors"]["query"].is_array(), "a repeated parameter");

    let (status, body, tally) = f
        .get("/api/articles?tag=odd&author=&favorited=", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["articlesCount"], 12, "empty filters are no filters");
    assert_eq!(tally.operations(), "BatchGetItem×1");

    let uri = format!(
        "/api/articles?tag=even&author={}&favorited={}",
        f.author_name(0),
        f.caller_name()
    );
    let (_, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(slugs(&body), [20, 10].map(|i| f.slug(i)));
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×3",
        "2 × byUsername + byUser + BatchGetItem"
    );
    assert!(body["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .all(|a| a["favorited"] == true && a["author"]["following"] == true));

    // Unknown users, or a user without favorites: an empty list, only the username lookup.
    let empty = json!({"articles": [], "articlesCount": 0});
    for uri in [
        format!("/api/articles?author={}nobody", f.run),
        format!("/api/articles?favorited={}nobody", f.run),
    ] {
        let (status, body, tally) = f.get(&uri, None).await;
        assert_eq!((status, &body), (StatusCode::OK, &empty), "{uri}");
        assert_eq!(tally.operations(), "Query×1", "{uri}");
    }
    let uri = format!("/api/articles?favorited={}", f.author_name(3));
    let (status, body, tally) = f.get(&uri, None).await;
    assert_eq!((status, body), (StatusCode::OK, empty));
    assert_eq!(tally.operations(), "Query×2", "byUsername + byUser");
}

#[tokio::test]
async fn one_article_costs_a_query_and_a_batch_and_with_a_token_a_transactional_read() {
    let f = fixture("qryone").await;

    let uri = format!("/api/articles/{}", f.slug(5));
    let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("GET /api/articles/{{slug}} (with a token): {tally:?}");
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×1 TransactGetItems×1",
        "bySlug, then the body, author and follow beside the article and favorite together"
    );
    assert!(tally.read_units > 0.0, "{tally:?}");
    assert_eq!(
        body,
        json!({"article": {
            "slug": f.slug(5),
            "title": "Title 5",
            "description": "Description 5",
            "body": "Body 5",
            "tagList": ["all", "odd"],
            "createdAt": Fixture::created_at(5),
            "updatedAt": Fixture::created_at(5),
            "favorited": true,
            "favoritesCount": 2,
            "author": {
                "username": f.author_name(0),
                "bio": format!("bio of {}", f.author_name(0)),
                "image": "",
                "following": true,
            },
        }})
    );

    let uri = format!("/api/articles/{}", f.slug(7));
    let (_, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(body["article"]["favorited"], false);
    assert_eq!(body["article"]["author"]["following"], false);
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×1 TransactGetItems×1"
    );
    let (_, body, tally) = f.get(&uri, None).await;
    assert_eq!(body["article"]["body"], "Body 7");
    assert_eq!(tally.operations(), "BatchGetItem×1 Query×1");

    // The author reading their own article does not follow themself.
    let own = JwtKeys::new(
        &JwtSettings::new(JWT_SECRET.to_vec(), Duration::from_secs(600)).expect("jwt"),
    )
    .issue(&f.author_id(2))
    .expect("token");
    let (_, body, _) = f.get(&uri, Some(&own)).await;
    assert_eq!(body["article"]["author"]["following"], false);

    let uri = format!("/api/articles/{}-nothing", f.run);
    let (status, body, tally) = f.get(&uri, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"errors": {"article": ["not found"]}}));
    // No read units to check: DynamoDB Local reports 0 for a query that matches nothing.
    assert_eq!(tally.operations(), "Query×1", "bySlug only");

    // An article item without its body item (a read racing the article's deletion) is not
    // visible, like one whose author is not projected yet.
    let id = format!("{}bodiless", f.run);
    let bodiless = item([
        (articles::ARTICLE_ID, s(&id)),
        (articles::SLUG, s(&format!("{}-bodiless", f.run))),
        (articles::TITLE, s("Bodiless")),
        (articles::AUTHOR_ID, s(&f.author_id(0))),
        (articles::CREATED_AT, s(&Fixture::created_at(0))),
        (articles::UPDATED_AT, s(&Fixture::created_at(0))),
        (articles::LAST_SEQ, n(1)),
    ]);
    put(&f.seeder, &f.tables.articles, bodiless).await;
    let uri = format!("/api/articles/{}-bodiless", f.run);
    let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({"errors": {"article": ["not found"]}}));
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×1 TransactGetItems×1"
    );
}

#[tokio::test]
async fn a_page_costs_the_same_read_units_whatever_the_size_of_the_bodies() {
    let f = fixture("qrybodies").await;
    // 20 more articles, each with a 40,000-character body, under a tag of their own, by the
    // same 5 authors as the newest 20 small ones.
    let big_body = "x".repeat(40_000);
    let big_tags = vec!["big".to_owned()];
    for i in 0..20 {
        f.publish(&Seeded {
            id: &format!("{}big{i:02}", f.run),
            slug: &format!("{}-big-{i:02}", f.run),
            title: &format!("Title {i}"),
            description: &format!("Description {i}"),
            body: &big_body,
            tags: &big_tags,
            author_id: &f.author_id(Fixture::author_of(i)),
            created_at: &Fixture::created_at(i),
            favorites_count: i as u64 % 3,
        })
        .await;
    }

    let (status, small_page, small) = f.get("/api/articles?tag=all&limit=20", None).await;
    assert_eq!(status, StatusCode::OK, "{small_page}");
    assert_eq!(slugs(&small_page), newest_first(&f, 24, 5));
    let (status, big_page, big) = f.get("/api/articles?tag=big&limit=20", None).await;
    assert_eq!(status, StatusCode::OK, "{big_page}");
    assert_eq!(slugs(&big_page).len(), 20);
    eprintln!("a page of 20 small bodies: {small:?}; of 20 bodies of 40,000 characters: {big:?}");
    assert_eq!(small.operations(), "BatchGetItem×1");
    assert_eq!(big.operations(), "BatchGetItem×1");
    assert!(small.read_units > 0.0, "{small:?}");
    assert_eq!(
        big.read_units, small.read_units,
        "a list page reads no body"
    );

    // The bodies are there, and charged, when one article is read.
    let (_, one_small, small) = f.get(&format!("/api/articles/{}", f.slug(0)), None).await;
    assert_eq!(one_small["article"]["body"], "Body 0");
    let uri = format!("/api/articles/{}-big-00", f.run);
    let (status, one_big, big) = f.get(&uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one_big["article"]["body"], big_body.as_str());
    eprintln!("one article with a small body: {small:?}; with 40,000 characters: {big:?}");
    assert_eq!(big.operations(), "BatchGetItem×1 Query×1");
    assert!(big.read_units > small.read_units, "{big:?} vs {small:?}");
}

#[tokio::test]
async fn comments_come_oldest_first_for_a_query_each_and_one_batch() {
    let f = fixture("qrycomments").await;

    let uri = format!("/api/articles/{}/comments", f.slug(0));
    let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("GET /api/articles/{{slug}}/comments (3, with a token): {tally:?}");
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×2",
        "bySlug + comments + BatchGetItem"
    );
    assert!(tally.read_units > 0.0, "{tally:?}");
    let comments = body["comments"].as_array().expect("comments");
    let ids: Vec<u64> = comments
        .iter()
        .map(|c| c["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(comments[0]["body"], "Comment 1");
    assert_eq!(comments[0]["createdAt"], Fixture::created_at(31));
    assert_eq!(comments[0]["author"]["username"], f.author_name(1));
    assert_eq!(comments[0]["author"]["following"], true);
    assert_eq!(comments[1]["author"]["username"], f.author_name(2));
    assert_eq!(comments[1]["author"]["following"], false);

    let (_, body, tally) = f.get(&uri, None).await;
    assert_eq!(body["comments"][0]["author"]["following"], false);
    assert_eq!(tally.operations(), "BatchGetItem×1 Query×2");

    let uri = format!("/api/articles/{}/comments", f.slug(1));
    let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"comments": []})));
    assert_eq!(tally.operations(), "Query×2", "no authors to look up");

    let uri = format!("/api/articles/{}-nothing/comments", f.run);
    let (status, body, _) = f.get(&uri, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"errors": {"article": ["not found"]}}));
}

#[tokio::test]
async fn limit_and_offset_are_validated_before_any_read() {
    let f = fixture("qrypaging").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=2.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=10001", "offset"),
    ] {
        let (status, body, tally) = f.get(&format!("/api/articles?{query}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["errors"][field]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
        assert_eq!(tally, Tally::default(), "{query}: no request");
    }
    let (status, body, _) = f.get("/api/articles?limit=0&offset=-5", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["errors"]["limit"].is_array() && body["errors"]["offset"].is_array());

    // Above 100 is clamped, not refused; 10,000 is the deepest offset.
    let (status, body, tally) = f.get("/api/articles?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(slugs(&body).len(), ARTICLES);
    assert_eq!(tally.operations(), "BatchGetItem×1");
    let (status, body, _) = f.get("/api/articles?offset=10000", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["articles"], json!([]));
}

#[tokio::test]
async fn tags_come_from_the_search_index_without_dynamodb() {
    let f = fixture("qrytags").await;
    let (status, body, tally) = f.get("/api/tags", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut tags: Vec<String> = serde_json::from_value(body["tags"].clone()).expect("tags");
    tags.sort();
    assert_eq!(tags, ["all", "even", "odd"]);
    assert_eq!(tally, Tally::default(), "no DynamoDB request");
}

#[tokio::test]
async fn batch_get_spans_tables_and_chunks_at_100_keys() {
    let f = fixture("qrybatch").await;
    let t = &f.tables;
    // 150 user ids of which 6 exist, 25 articles twice over, one follow: 176 distinct keys.
    let mut keys: Vec<BatchKey> = (0..150)
        .map(|i| {
            let id = if i < AUTHORS {
                f.author_id(i)
            } else if i == AUTHORS {
                f.caller_id()
            } else {
                format!("{}missing{i}", f.run)
            };
            BatchKey::new(&t.users, [(users::USER_ID, s(&id))])
        })
        .collect();
    for _ in 0..2 {
        for i in 0..ARTICLES {
            keys.push(BatchKey::new(
                &t.articles,
                [(articles::ARTICLE_ID, s(&f.article_id(i)))],
            ));
        }
    }
    keys.push(BatchKey::new(
        &t.follows,
        [
            (follows::FOLLOWER_ID, s(&f.caller_id())),
            (follows::FOLLOWEE_ID, s(&f.author_id(0))),
        ],
    ));
    f.meter.take();
    let found = f.state.readers.batch_get(keys).await.expect("batch get");
    let tally = f.meter.take();
    assert_eq!(tally.operations(), "BatchGetItem×2", "176 keys: 100 + 76");
    assert!(tally.read_units > 0.0, "{tally:?}");
    assert_eq!(found[&t.users].len(), AUTHORS + 1);
    assert_eq!(found[&t.articles].len(), ARTICLES);
    assert_eq!(found[&t.follows].len(), 1);
}

/// Seeds the caller's feed as the feed projector writes it: an entry and a feed article for
/// every article of the authors the caller follows (titles that differ from the `articles`
/// items, to show where the content comes from), plus three entries newer than all of them:
/// one whose feed article is being deleted, one whose feed article is gone, and one whose
/// article the articles projection has not written yet. Returns the slugs the feed shows,
/// `None` for the two entries it leaves out, newest first.
async fn seed_feed(f: &Fixture) -> Vec<Option<String>> {
    let t = &f.tables;
    let feed_article = |id: &str, slug: &str, title: &str, author: &str, created_at: &str| {
        item([
            (feed_articles::AUTHOR_ID, s(author)),
            (feed_articles::ARTICLE_ID, s(id)),
            (feed_articles::SLUG, s(slug)),
            (feed_articles::TITLE, s(title)),
            (feed_articles::DESCRIPTION, s("In the feed")),
            (feed_articles::TAG_LIST, AttributeValue::L(vec![s("feed")])),
            (feed_articles::CREATED_AT, s(created_at)),
            (feed_articles::UPDATED_AT, s(created_at)),
            (feed_articles::LAST_SEQ, n(1)),
        ])
    };
    let entry = |id: &str, author: &str, created_at: &str| {
        item([
            (feeds::USER_ID, s(&f.caller_id())),
            (feeds::FEED_KEY, s(&feeds::feed_key(created_at, id))),
            (feeds::AUTHOR_ID, s(author)),
            (feeds::ARTICLE_ID, s(id)),
        ])
    };
    let mut shown = Vec::new();
    for i in (0..ARTICLES).filter(|i| FOLLOWED_AUTHORS.contains(&Fixture::author_of(*i))) {
        let (id, author) = (f.article_id(i), f.author_id(Fixture::author_of(i)));
        let created_at = Fixture::created_at(i);
        let title = format!("Feed title {i}");
        let copy = feed_article(&id, &f.slug(i), &title, &author, &created_at);
        put(&f.seeder, &t.feed_articles, copy).await;
        put(&f.seeder, &t.feeds, entry(&id, &author, &created_at)).await;
        shown.push(Some(f.slug(i)));
    }
    let author = f.author_id(1);
    let (deleting, gone, fresh) = (
        format!("{}deleting", f.run),
        format!("{}gone", f.run),
        format!("{}fresh", f.run),
    );
    for (k, id) in [&deleting, &gone, &fresh].into_iter().enumerate() {
        put(
            &f.seeder,
            &t.feeds,
            entry(id, &author, &Fixture::created_at(40 + k)),
        )
        .await;
    }
    let mut being_deleted = feed_article(&deleting, "x", "x", &author, &Fixture::created_at(40));
    being_deleted.insert(
        feed_articles::DELETED.to_owned(),
        AttributeValue::Bool(true),
    );
    put(&f.seeder, &t.feed_articles, being_deleted).await;
    let fresh_slug = format!("{}-fresh", f.run);
    let copy = feed_article(
        &fresh,
        &fresh_slug,
        "Fresh",
        &author,
        &Fixture::created_at(42),
    );
    put(&f.seeder, &t.feed_articles, copy).await;
    shown.extend([None, None, Some(fresh_slug)]);
    shown.reverse();
    shown
}

/// The slugs a feed page shows: the entries `offset..offset + limit` but those left out.
fn feed_slice(shown: &[Option<String>], offset: usize, limit: usize) -> Vec<String> {
    shown
        .iter()
        .skip(offset)
        .take(limit)
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_feed_page_costs_a_count_a_page_query_and_one_batch() {
    let f = fixture("qryfeed").await;
    let shown = seed_feed(&f).await;
    let total = shown.len() as u64;

    let (status, body, tally) = f.get("/api/articles/feed", Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("GET /api/articles/feed ({total} entries): {tally:?}");
    assert_eq!(
        tally.operations(),
        "BatchGetItem×1 Query×2",
        "a count of the feed and its first entries, side by side, then one BatchGetItem"
    );
    assert!(tally.read_units > 0.0, "{tally:?}");
    assert_eq!(tally.write_units, 0.0, "{tally:?}");
    assert_eq!(body["articlesCount"], total, "every entry counts");
    assert_eq!(slugs(&body), feed_slice(&shown, 0, 20), "newest first");
    let listed = body["articles"].as_array().expect("articles");
    let fresh = &listed[0];
    assert_eq!(fresh["title"], "Fresh");
    assert_eq!(fresh["favoritesCount"], 0, "no articles item yet");
    for article in &listed[1..] {
        let slug = article["slug"].as_str().expect("slug");
        let i: usize = slug
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("i");
        let author = Fixture::author_of(i);
        assert!(article.get("body").is_none(), "a feed leaves the body out");
        assert_eq!(
            article["title"],
            format!("Feed title {i}"),
            "from feed-articles"
        );
        assert_eq!(article["description"], "In the feed");
        assert_eq!(article["tagList"], json!(["feed"]));
        assert_eq!(article["createdAt"], Fixture::created_at(i));
        assert_eq!(
            article["favoritesCount"],
            i as u64 % 3,
            "from the articles table"
        );
        assert_eq!(article["favorited"], FAVORITED.contains(&i), "{slug}");
        assert_eq!(
            article["author"],
            json!({
                "username": f.author_name(author),
                "bio": format!("bio of {}", f.author_name(author)),
                "image": "",
                "following": true,
            })
        );
    }

    // Any page: the same three requests; left-out entries still take their place in the pages.
    for (offset, limit) in [(0, 1), (0, 5), (3, 4), (10, 5), (0, 100), (0, 1000)] {
        let uri = format!("/api/articles/feed?limit={limit}&offset={offset}");
        let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(slugs(&body), feed_slice(&shown, offset, limit), "{uri}");
        assert_eq!(body["articlesCount"], total, "{uri}");
        assert_eq!(tally.operations(), "BatchGetItem×1 Query×2", "{uri}");
    }
    // Past the end: the count and the page's query, and no BatchGetItem.
    let (status, body, tally) = f.get("/api/articles/feed?offset=13", Some(&f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"articles": [], "articlesCount": total}));
    assert_eq!(tally.operations(), "Query×2");

    // Someone who follows nobody: an empty feed.
    let lonely = JwtKeys::new(
        &JwtSettings::new(JWT_SECRET.to_vec(), Duration::from_secs(600)).expect("jwt"),
    )
    .issue(&f.author_id(3))
    .expect("token");
    let (status, body, tally) = f.get("/api/articles/feed", Some(&lonely)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"articles": [], "articlesCount": 0}));
    assert_eq!(tally.operations(), "Query×2");
}

#[tokio::test]
async fn the_feed_needs_a_token_and_a_valid_page_before_any_read() {
    let f = fixture("qryfeedauth").await;
    for token in [None, Some("garbage")] {
        let (status, body, tally) = f.get("/api/articles/feed", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert!(
            body["errors"].as_object().is_some_and(|e| !e.is_empty()),
            "{token:?}: {body}"
        );
        assert_eq!(tally, Tally::default(), "{token:?}: no request");
    }
    // Without a token, a bad page is still a 401.
    let (status, _, _) = f.get("/api/articles/feed?limit=0", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=10001", "offset"),
    ] {
        let uri = format!("/api/articles/feed?{query}");
        let (status, body, tally) = f.get(&uri, Some(&f.token)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["errors"][field]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
        assert_eq!(tally, Tally::default(), "{query}: no request");
    }
}
