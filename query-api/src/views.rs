//! `GET /api/views...`: every read model as a projected view, paged with opaque cursors.
//!
//! * `GET /api/views` lists the views: `{"views": [{"name", "description", "projection",
//!   "private", "id", "filter"}]}` (`id`: how an item's id is written; `filter`: the query
//!   parameter that narrows the list to one partition, or null).
//! * `GET /api/views/{view}?limit=&cursor=` is one page: `{"view", "items": [...],
//!   "nextCursor": "..." | null}`, the cursor also in the header `conduit-next-cursor` (absent on
//!   the last page). `limit` is 1..=100 (default 20; else 422 `errors.limit`). A page may be
//!   shorter than `limit`, even empty, and still have a cursor; the end is a null cursor.
//! * `GET /api/views/{view}/{id}` is one item: `{"view", "item": {...}}`, 404 when absent.
//!
//! Views, their items (camelCase, no internal attribute) and ids:
//!
//! | view | items | id | order |
//! |---|---|---|---|
//! | `users` (private) | `userId email username bio image` | `{userId}` | - |
//! | `profiles` | `userId username bio image` | `{userId}` | table order |
//! | `follows` | `followerId followeeId` | `{followerId}:{followeeId}` | table order, or by followee with `?followerId=` |
//! | `articles` | `articleId slug title description tagList authorId createdAt updatedAt favoritesCount` (+ `body` for one item) | `{articleId}` | table order |
//! | `comments` | `articleId commentId authorId body createdAt updatedAt` | `{articleId}:{commentId}` | table order, or oldest first with `?articleId=` |
//! | `favorites` | `articleId userId` | `{articleId}:{userId}` | table order, or by user with `?articleId=` |
//! | `tags` | `tag` | `{tag}` | by name (the search index's tags: the 1,000 most used) |
//! | `feeds` (private) | `userId articleId authorId` (one entry of reader `userId`'s feed) | `{userId}`: the reader's whole feed, answered as a page | newest first |
//!
//! "Table order" is DynamoDB's scan order: stable while the table does not change, so a cursor
//! replayed later gives the same page unless items were written or removed around it. Private
//! views hold the caller's own data only: without a token they answer 401; their list is the
//! caller's own (the user item; the caller's feed), and an id other than the caller's is 403
//! (whether or not it exists). No view holds a secret: the users view is built from the read
//! model's fields one by one, and the read model has no password hash.
//!
//! A cursor is the base64url (unpadded) JSON `{"view": ..., "key": {attribute: {"S"|"N":
//! value}}}` of the key the page ended with (DynamoDB's `LastEvaluatedKey`; for tags, the last
//! tag). It is checked before use: base64url, JSON of that shape, the same view, exactly the
//! view's key attributes with their types, and the partition being read (caller, filter);
//! anything else is 400 `{"errors":{"cursor":["is invalid"]}}`. Reads go to the tables of
//! each projection's active version ([`common::projections::ActiveVersions`]).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::auth::MaybeAuthUser;
use common::config::TableNames;
use common::error::ApiError;
use common::projections::Projection;
use events::views::article_bodies::{self, ArticleBodyView};
use events::views::articles::{self, ArticleView};
use events::views::comments::{self, CommentView};
use events::views::feeds::FeedEntry;
use events::views::users::UserView;
use events::views::{favorites, follows, text, Item};
use schema::AttrType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consistency::ReadMode;
use crate::readers::PageQuery;
use crate::AppState;

/// The response header that repeats a page's `nextCursor`.
pub const NEXT_CURSOR_HEADER: &str = "conduit-next-cursor";
/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest `limit`; more is refused (422).
pub const MAX_LIMIT: usize = 100;
/// The longest cursor accepted (ours are far shorter).
const MAX_CURSOR_CHARS: usize = 4_096;

/// One projected view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Users,
    Profiles,
    Follows,
    Articles,
    Comments,
    Favorites,
    Tags,
    Feeds,
}

/// The key of a view's items, as [`schema`] defines its table's: a string partition key and
/// maybe a sort key.
#[derive(Clone, Copy, Debug)]
struct KeySchema {
    partition: &'static str,
    sort: Option<(&'static str, AttrType)>,
}

impl KeySchema {
    fn of(table: &schema::TableDef) -> Self {
        Self {
            partition: table.key.hash.name,
            sort: table.key.range.map(|range| (range.name, range.ty)),
        }
    }
}

impl View {
    pub const ALL: [View; 8] = [
        View::Users,
        View::Profiles,
        View::Follows,
        View::Articles,
        View::Comments,
        View::Favorites,
        View::Tags,
        View::Feeds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Users => "users",
            View::Profiles => "profiles",
            View::Follows => "follows",
            View::Articles => "articles",
            View::Comments => "comments",
            View::Favorites => "favorites",
            View::Tags => "tags",
            View::Feeds => "feeds",
        }
    }

    pub fn named(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|view| view.name() == name)
    }

    /// What one of its items is, in an error's field name (`{"user": ["not found"]}`).
    fn noun(self) -> &'static str {
        match self {
            View::Users => "user",
            View::Profiles => "profile",
            View::Follows => "follow",
            View::Articles => "article",
            View::Comments => "comment",
            View::Favorites => "favorite",
            View::Tags => "tag",
            View::Feeds => "feed",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            View::Users => "Your own user, with your email (private: the caller's item only).",
            View::Profiles => "Every user's public profile.",
            View::Follows => "Who follows whom, one item per (follower, followee).",
            View::Articles => {
                "Every published article without its body (one item by id includes the body)."
            }
            View::Comments => "Every live comment, one item per (article, comment id).",
            View::Favorites => "Who favorites which article, one item per (article, user).",
            View::Tags => "The tags in use (the 1,000 most used), sorted by name.",
            View::Feeds => {
                "Your feed: the articles of the authors you follow, newest first (private)."
            }
        }
    }

    /// Whether only the caller's own items can be read.
    pub fn private(self) -> bool {
        matches!(self, View::Users | View::Feeds)
    }

    /// The projection that builds it.
    pub fn projection(self) -> Projection {
        match self {
            View::Users | View::Profiles | View::Follows => Projection::Users,
            View::Articles | View::Comments | View::Favorites => Projection::Articles,
            View::Tags => Projection::Search,
            View::Feeds => Projection::Feed,
        }
    }

    /// [`Self::projection`] as a slice, for [`crate::consistency::Reads`].
    pub fn projections(self) -> &'static [Projection] {
        match self.projection() {
            Projection::Users => &[Projection::Users],
            Projection::Articles => &[Projection::Articles],
            Projection::Feed => &[Projection::Feed],
            Projection::Search => &[Projection::Search],
        }
    }

    /// How the id of one item is written in `/api/views/{view}/{id}`.
    pub fn id_syntax(self) -> &'static str {
        match self {
            View::Users | View::Profiles => "{userId}",
            View::Follows => "{followerId}:{followeeId}",
            View::Articles => "{articleId}",
            View::Comments => "{articleId}:{commentId}",
            View::Favorites => "{articleId}:{userId}",
            View::Tags => "{tag}",
            View::Feeds => "{userId}",
        }
    }

    /// The query parameter that narrows the list to one partition.
    pub fn filter(self) -> Option<&'static str> {
        match self {
            View::Follows => Some(follows::FOLLOWER_ID),
            View::Comments | View::Favorites => Some(comments::ARTICLE_ID),
            _ => None,
        }
    }

    fn key_schema(self) -> KeySchema {
        KeySchema::of(match self {
            View::Users | View::Profiles => &schema::users::TABLE,
            View::Follows => &schema::follows::TABLE,
            View::Articles => &schema::articles::TABLE,
            View::Comments => &schema::comments::TABLE,
            View::Favorites => &schema::favorites::TABLE,
            View::Feeds => &schema::feeds::TABLE,
            // The tags live in the search index, one entry per tag.
            View::Tags => {
                return KeySchema {
                    partition: TAG,
                    sort: None,
                }
            }
        })
    }

    /// Its table among `tables` (the tags live in the search index).
    fn table(self, tables: &TableNames) -> Option<&str> {
        match self {
            View::Users | View::Profiles => Some(&tables.users),
            View::Follows => Some(&tables.follows),
            View::Articles => Some(&tables.articles),
            View::Comments => Some(&tables.comments),
            View::Favorites => Some(&tables.favorites),
            View::Tags => None,
            View::Feeds => Some(&tables.feeds),
        }
    }

    /// A read-model item as this view shows it; `None` for an item it does not show (an
    /// article tombstone, an item counting favorites only, a half-written item).
    fn shape(self, item: &Item) -> Option<Value> {
        let value = match self {
            View::Users => {
                let user = UserView::from_item(item)?;
                to_json(UserItem {
                    user_id: user.user_id,
                    email: user.email,
                    username: user.username,
                    bio: user.bio,
                    image: user.image,
                })
            }
            View::Profiles => {
                let user = UserView::from_item(item)?;
                to_json(ProfileItem {
                    user_id: user.user_id,
                    username: user.username,
                    bio: user.bio,
                    image: user.image,
                })
            }
            View::Follows => to_json(FollowItem {
                follower_id: text(item, follows::FOLLOWER_ID)?,
                followee_id: text(item, follows::FOLLOWEE_ID)?,
            }),
            View::Articles => to_json(ArticleItem::new(ArticleView::from_item(item)?, None)),
            View::Comments => {
                let comment = CommentView::from_item(item)?;
                to_json(CommentItem {
                    article_id: comment.article_id,
                    comment_id: comment.comment_id,
                    author_id: comment.author_id,
                    body: comment.body,
                    created_at: comment.created_at,
                    updated_at: comment.updated_at,
                })
            }
            View::Favorites => to_json(FavoriteItem {
                article_id: text(item, favorites::ARTICLE_ID)?,
                user_id: text(item, favorites::USER_ID)?,
            }),
            View::Tags => to_json(TagItem {
                tag: text(item, TAG)?,
            }),
            View::Feeds => {
                let entry = FeedEntry::from_item(item)?;
                to_json(FeedItem {
                    user_id: entry.user_id,
                    article_id: entry.article_id,
                    author_id: entry.author_id,
                })
            }
        };
        Some(value)
    }
}

/// The key attribute of a tags cursor (the tags are no table).
const TAG: &str = "tag";

fn to_json(item: impl Serialize) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserItem {
    user_id: String,
    email: String,
    username: String,
    bio: String,
    image: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileItem {
    user_id: String,
    username: String,
    bio: String,
    image: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FollowItem {
    follower_id: String,
    followee_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArticleItem {
    article_id: String,
    slug: String,
    title: String,
    description: String,
    tag_list: Vec<String>,
    author_id: String,
    created_at: String,
    updated_at: String,
    favorites_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

impl ArticleItem {
    fn new(article: ArticleView, body: Option<String>) -> Self {
        Self {
            article_id: article.article_id,
            slug: article.slug,
            title: article.title,
            description: article.description,
            tag_list: article.tag_list,
            author_id: article.author_id,
            created_at: article.created_at,
            updated_at: article.updated_at,
            favorites_count: article.favorites_count,
            body,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentItem {
    article_id: String,
    comment_id: u64,
    author_id: String,
    body: String,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FavoriteItem {
    article_id: String,
    user_id: String,
}

#[derive(Serialize)]
struct TagItem {
    tag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeedItem {
    user_id: String,
    article_id: String,
    author_id: String,
}

/// The projections `GET /api/views/{view}...` reads, from its path (none for the index or an
/// unknown view).
pub fn projections_of(uri: &Uri) -> &'static [Projection] {
    uri.path()
        .strip_prefix("/api/views/")
        .and_then(|rest| rest.split('/').next())
        .and_then(View::named)
        .map(View::projections)
        .unwrap_or(&[])
}

// ---------------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------------

/// The JSON inside a cursor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorBody {
    view: String,
    key: BTreeMap<String, KeyValue>,
}

/// A key attribute's value, as DynamoDB JSON writes it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
enum KeyValue {
    S(String),
    N(String),
}

/// A cursor that is not one of ours, or not for this read.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidCursor;

/// The cursor continuing after `key` in `view`; `None` if the key is not of the view's shape
/// (a bug, not an input).
fn encode_cursor(view: View, key: &Item) -> Option<String> {
    let key = key
        .iter()
        .map(|(name, value)| {
            let value = match value {
                AttributeValue::S(s) => KeyValue::S(s.clone()),
                AttributeValue::N(n) => KeyValue::N(n.clone()),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect::<Option<BTreeMap<_, _>>>()?;
    let body = CursorBody {
        view: view.name().to_owned(),
        key,
    };
    serde_json::to_vec(&body).ok().map(|json| base64url(&json))
}

/// The key a cursor of `view` continues after, checked against the view's key schema.
fn decode_cursor(view: View, cursor: &str) -> Result<Item, InvalidCursor> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(InvalidCursor);
    }
    let json = from_base64url(cursor).ok_or(InvalidCursor)?;
    let body: CursorBody = serde_json::from_slice(&json).map_err(|_| InvalidCursor)?;
    if body.view != view.name() {
        return Err(InvalidCursor);
    }
    let schema = view.key_schema();
    let expected: Vec<(&str, AttrType)> = std::iter::once((schema.partition, AttrType::S))
        .chain(schema.sort)
        .collect();
    if body.key.len() != expected.len() {
        return Err(InvalidCursor);
    }
    let mut key = Item::new();
    for (name, kind) in expected {
        let value = match (body.key.get(name), kind) {
            (Some(KeyValue::S(s)), AttrType::S) if !s.is_empty() && s.len() <= 2_048 => {
                AttributeValue::S(s.clone())
            }
            (Some(KeyValue::N(n)), AttrType::N)
                if n.parse::<u64>().is_ok() && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                AttributeValue::N(n.clone())
            }
            _ => return Err(InvalidCursor),
        };
        key.insert(name.to_owned(), value);
    }
    Ok(key)
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Unpadded base64url back to bytes; `None` for anything [`base64url`] does not write (padding,
/// a bad length, or bits set past the last byte, so that one byte string has one cursor).
fn from_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// What a view request can answer besides success.
#[derive(Debug)]
pub enum ViewError {
    Api(ApiError),
    /// 400 `{"errors":{"cursor":["is invalid"]}}`.
    Cursor,
    /// 403: another user's item of a private view.
    NotOwner,
}

impl From<ApiError> for ViewError {
    fn from(error: ApiError) -> Self {
        ViewError::Api(error)
    }
}

impl From<InvalidCursor> for ViewError {
    fn from(_: InvalidCursor) -> Self {
        ViewError::Cursor
    }
}

impl IntoResponse for ViewError {
    fn into_response(self) -> Response {
        match self {
            ViewError::Api(error) => error.into_response(),
            ViewError::Cursor => {
                crate::field_error(StatusCode::BAD_REQUEST, "cursor", "is invalid")
            }
            ViewError::NotOwner => crate::field_error(
                StatusCode::FORBIDDEN,
                "view",
                "is readable by its owner only",
            ),
        }
    }
}

/// The query string of a view request, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    #[serde(rename = "articleId")]
    pub article_id: Option<String>,
    #[serde(rename = "followerId")]
    pub follower_id: Option<String>,
}

/// One entry of `GET /api/views`.
#[derive(Serialize)]
struct ViewInfo {
    name: &'static str,
    description: &'static str,
    projection: &'static str,
    private: bool,
    id: &'static str,
    filter: Option<&'static str>,
}

/// `GET /api/views`.
#[tracing::instrument(skip_all)]
pub async fn index() -> Json<Value> {
    let views: Vec<ViewInfo> = View::ALL
        .into_iter()
        .map(|view| ViewInfo {
            name: view.name(),
            description: view.description(),
            projection: view.projection().name(),
            private: view.private(),
            id: view.id_syntax(),
            filter: view.filter(),
        })
        .collect();
    Json(serde_json::json!({ "views": views }))
}

/// `GET /api/views/{view}`.
#[tracing::instrument(skip_all, fields(view = %name))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    mode: ReadMode,
    Path(name): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ViewError> {
    let view = View::named(&name).ok_or(ApiError::NotFound("view"))?;
    let Query(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
    let owner = if view.private() {
        Some(caller_id(&caller)?.to_owned())
    } else {
        None
    };
    page(&state, view, owner, params, mode).await
}

/// `GET /api/views/{view}/{id}`.
#[tracing::instrument(skip_all, fields(view = %name))]
pub async fn get(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    mode: ReadMode,
    Path((name, id)): Path<(String, String)>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ViewError> {
    let view = View::named(&name).ok_or(ApiError::NotFound("view"))?;
    if view.private() && caller_id(&caller)? != id {
        return Err(ViewError::NotOwner);
    }
    if view == View::Feeds {
        // A reader's feed is one item too long to send whole: it is answered as its pages.
        let Query(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
        return page(&state, view, Some(id), params, mode).await;
    }
    let found = match view {
        View::Tags => {
            let tags = state
                .search()
                .await?
                .tags()
                .await
                .map_err(crate::search_failed)?;
            tags.contains(&id)
                .then(|| to_json(TagItem { tag: id.clone() }))
        }
        View::Articles => article(&state, &id, mode).await?,
        _ => {
            let readers = state.readers().await?;
            match (view.table(readers.tables()), item_key(view, &id)) {
                (Some(table), Some(key)) => readers
                    .item(table, key, mode.consistent)
                    .await?
                    .and_then(|item| view.shape(&item)),
                _ => None,
            }
        }
    };
    let item = found.ok_or(ApiError::NotFound(view.noun()))?;
    Ok(Json(serde_json::json!({ "view": view.name(), "item": item })).into_response())
}

/// The caller's id, for a private view: 401 without a token.
fn caller_id(caller: &MaybeAuthUser) -> Result<&str, ApiError> {
    caller.user_id().ok_or_else(ApiError::missing_token)
}

/// The key of item `id` of a table-backed view; `None` when `id` is not of the view's syntax.
fn item_key(view: View, id: &str) -> Option<Item> {
    let schema = view.key_schema();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let non_empty = |v: &str| !v.is_empty();
    let mut key = Item::new();
    match schema.sort {
        None => {
            key.insert(schema.partition.to_owned(), s(id));
            non_empty(id).then_some(key)
        }
        Some((sort, AttrType::S)) => {
            let (partition, rest) = id.split_once(':')?;
            if !non_empty(partition) || !non_empty(rest) || rest.contains(':') {
                return None;
            }
            key.insert(schema.partition.to_owned(), s(partition));
            key.insert(sort.to_owned(), s(rest));
            Some(key)
        }
        Some((sort, AttrType::N)) => {
            let (partition, number) = id.rsplit_once(':')?;
            if !non_empty(partition)
                || number.is_empty()
                || !number.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let number: u64 = number.parse().ok()?;
            key.insert(schema.partition.to_owned(), s(partition));
            key.insert(sort.to_owned(), AttributeValue::N(number.to_string()));
            Some(key)
        }
        Some((_, AttrType::B)) => None,
    }
}

/// One article with its body: two `GetItem`s side by side.
async fn article(state: &AppState, id: &str, mode: ReadMode) -> Result<Option<Value>, ApiError> {
    let readers = state.readers().await?;
    let tables = readers.tables();
    let key = |name: &str| Item::from([(name.to_owned(), AttributeValue::S(id.to_owned()))]);
    let (article, body) = tokio::try_join!(
        readers.item(&tables.articles, key(articles::ARTICLE_ID), mode.consistent),
        readers.item(
            &tables.article_bodies,
            key(article_bodies::ARTICLE_ID),
            mode.consistent
        ),
    )?;
    let Some(article) = article.as_ref().and_then(ArticleView::from_item) else {
        return Ok(None);
    };
    let body = body
        .as_ref()
        .and_then(ArticleBodyView::from_item)
        .map(|b| b.body)
        .unwrap_or_default();
    Ok(Some(to_json(ArticleItem::new(article, Some(body)))))
}

/// The `limit` of a page: 1..=100, default 20; an empty one is not an integer.
fn limit(raw: Option<String>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, raw.strip_prefix('+').unwrap_or(&raw)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field("limit", "must be an integer"));
    }
    match digits.parse::<usize>() {
        _ if negative => Err(ApiError::field("limit", "must be at least 1")),
        Ok(0) => Err(ApiError::field("limit", "must be at least 1")),
        Ok(n) if n <= MAX_LIMIT => Ok(n),
        _ => Err(ApiError::field(
            "limit",
            format!("must be at most {MAX_LIMIT}"),
        )),
    }
}

/// The partition the list is narrowed to by a filter parameter; 422 for a filter the view does
/// not have.
fn filter(view: View, params: &ListParams) -> Result<Option<String>, ApiError> {
    let given = [
        (comments::ARTICLE_ID, &params.article_id),
        (follows::FOLLOWER_ID, &params.follower_id),
    ];
    let mut partition = None;
    for (name, value) in given {
        let Some(value) = value.as_ref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if view.filter() != Some(name) {
            return Err(ApiError::field(
                name,
                format!("is not a filter of view {}", view.name()),
            ));
        }
        partition = Some(value.clone());
    }
    Ok(partition)
}

/// One page of `view`, narrowed to partition `owner` (private views) or to the filter's.
async fn page(
    state: &AppState,
    view: View,
    owner: Option<String>,
    params: ListParams,
    mode: ReadMode,
) -> Result<Response, ViewError> {
    let limit = limit(params.limit.clone())?;
    let partition = owner.or(filter(view, &params)?);
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(decode_cursor(view, cursor)?),
    };
    if let (Some(after), Some(partition)) = (&after, &partition) {
        let from = after.get(view.key_schema().partition);
        if from.and_then(|v| v.as_s().ok()) != Some(partition) {
            return Err(ViewError::Cursor);
        }
    }
    let (items, next) = if view == View::Tags {
        tags_page(state, after, limit).await?
    } else {
        table_page(state, view, partition, after, limit, mode).await?
    };
    let next = match next {
        None => None,
        Some(key) => Some(
            encode_cursor(view, &key)
                .ok_or_else(|| ApiError::internal(format!("{view:?}: a key no cursor holds")))?,
        ),
    };
    let mut response = Json(ListBody {
        view: view.name(),
        items,
        next_cursor: next.clone(),
    })
    .into_response();
    if let Some(value) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, value);
    }
    Ok(response)
}

/// A page's body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    view: &'static str,
    items: Vec<Value>,
    next_cursor: Option<String>,
}

/// A page of a view backed by a table.
async fn table_page(
    state: &AppState,
    view: View,
    partition: Option<String>,
    after: Option<Item>,
    limit: usize,
    mode: ReadMode,
) -> Result<(Vec<Value>, Option<Item>), ApiError> {
    let readers = state.readers().await?;
    let table = view
        .table(readers.tables())
        .ok_or_else(|| ApiError::internal(format!("{view:?} has no table")))?;
    let schema = view.key_schema();
    if let (Some(partition), None) = (&partition, schema.sort) {
        // One partition of a table without sort key is one item (the caller's user).
        if after.is_some() {
            return Ok((Vec::new(), None));
        }
        let key = Item::from([(
            schema.partition.to_owned(),
            AttributeValue::S(partition.clone()),
        )]);
        let item = readers.item(table, key, mode.consistent).await?;
        return Ok((item.iter().filter_map(|i| view.shape(i)).collect(), None));
    }
    let query = PageQuery {
        table,
        partition: partition.map(|p| (schema.partition, AttributeValue::S(p))),
        // A feed reads newest first, as `GET /articles/feed` shows it.
        forward: view != View::Feeds,
        after,
        limit,
        consistent: mode.consistent,
    };
    let page = readers
        .page(&query, |item| view.shape(item).is_some())
        .await?;
    let items = page.items.iter().filter_map(|i| view.shape(i)).collect();
    Ok((items, page.next))
}

/// A page of the tags, by name, after the cursor's tag.
async fn tags_page(
    state: &AppState,
    after: Option<Item>,
    limit: usize,
) -> Result<(Vec<Value>, Option<Item>), ApiError> {
    let mut tags = state
        .search()
        .await?
        .tags()
        .await
        .map_err(crate::search_failed)?;
    tags.sort_unstable();
    tags.dedup();
    let after = after.as_ref().and_then(|key| text(key, TAG));
    let mut rest = tags
        .into_iter()
        .filter(|tag| after.as_ref().is_none_or(|after| tag > after))
        .peekable();
    let page: Vec<String> = rest.by_ref().take(limit).collect();
    let next = match (rest.peek(), page.last()) {
        (Some(_), Some(last)) => Some(Item::from([(
            TAG.to_owned(),
            AttributeValue::S(last.clone()),
        )])),
        _ => None,
    };
    let items = page
        .into_iter()
        .map(|tag| to_json(TagItem { tag }))
        .collect();
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::views::{feeds, users};

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn key<const N: usize>(attributes: [(&str, AttributeValue); N]) -> Item {
        attributes
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    #[test]
    fn base64url_round_trips_and_is_canonical() {
        for bytes in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xfb, 0xff],
        ] {
            let text = base64url(bytes);
            assert!(!text.contains('='));
            assert_eq!(from_base64url(&text).as_deref(), Some(bytes), "{text}");
        }
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        // Standard alphabet, padding, a lone sextet, non-zero spare bits.
        for bad in ["+/8", "Zg==", "Zm9vY", "Zh", "Zm9vYh", "a b"] {
            assert_eq!(from_base64url(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_for_every_view() {
        let keys = [
            (View::Users, key([(users::USER_ID, s("u1"))])),
            (View::Profiles, key([(users::USER_ID, s("u1"))])),
            (
                View::Follows,
                key([
                    (follows::FOLLOWER_ID, s("a")),
                    (follows::FOLLOWEE_ID, s("b")),
                ]),
            ),
            (View::Articles, key([(articles::ARTICLE_ID, s("a1"))])),
            (
                View::Comments,
                key([
                    (comments::ARTICLE_ID, s("a1")),
                    (comments::COMMENT_ID, AttributeValue::N("12".into())),
                ]),
            ),
            (
                View::Favorites,
                key([
                    (favorites::ARTICLE_ID, s("a1")),
                    (favorites::USER_ID, s("u")),
                ]),
            ),
            (View::Tags, key([(TAG, s("dragons"))])),
            (
                View::Feeds,
                key([
                    (feeds::USER_ID, s("u")),
                    (feeds::FEED_KEY, s("0000000000001#a")),
                ]),
            ),
        ];
        for (view, key) in keys {
            let cursor = encode_cursor(view, &key).expect("encodable");
            assert!(cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode_cursor(view, &cursor), Ok(key), "{view:?}");
        }
    }

    #[test]
    fn cursors_are_checked_before_use() {
        let comments_cursor = |json: &str| base64url(json.as_bytes());
        let good = r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"N":"3"}}}"#;
        assert!(decode_cursor(View::Comments, &comments_cursor(good)).is_ok());
        // Another view's cursor.
        assert_eq!(
            decode_cursor(View::Favorites, &comments_cursor(good)),
            Err(InvalidCursor)
        );
        for bad in [
            "not json",
            "{}",
            "[]",
            r#"{"view":"comments"}"#,
            r#"{"view":"comments","key":{}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"S":"3"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"N":"1"},"commentId":{"N":"3"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":""},"commentId":{"N":"3"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"N":"-3"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"N":"3e2"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"N":"3"},"x":{"S":"y"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"B":"a"},"commentId":{"N":"3"}}}"#,
            r#"{"view":"comments","key":{"articleId":{"S":"a"},"commentId":{"N":"3"}},"more":1}"#,
            r#"{"view":"nope","key":{"articleId":{"S":"a"},"commentId":{"N":"3"}}}"#,
        ] {
            assert_eq!(
                decode_cursor(View::Comments, &comments_cursor(bad)),
                Err(InvalidCursor),
                "{bad}"
            );
        }
        for raw in ["", "%%%", "eyJ2aWV3Ijoi", &"A".repeat(MAX_CURSOR_CHARS + 4)] {
            assert_eq!(
                decode_cursor(View::Comments, raw),
                Err(InvalidCursor),
                "{raw}"
            );
        }
    }

    #[test]
    fn ids_follow_each_views_syntax() {
        assert_eq!(
            item_key(View::Follows, "a:b"),
            Some(key([
                (follows::FOLLOWER_ID, s("a")),
                (follows::FOLLOWEE_ID, s("b"))
            ]))
        );
        assert_eq!(
            item_key(View::Comments, "a-1:7"),
            Some(key([
                (comments::ARTICLE_ID, s("a-1")),
                (comments::COMMENT_ID, AttributeValue::N("7".into()))
            ]))
        );
        assert_eq!(
            item_key(View::Profiles, "u1"),
            Some(key([(users::USER_ID, s("u1"))]))
        );
        for (view, bad) in [
            (View::Follows, "ab"),
            (View::Follows, ":b"),
            (View::Follows, "a:"),
            (View::Follows, "a:b:c"),
            (View::Comments, "a:x"),
            (View::Comments, "a:-1"),
            (View::Comments, ":1"),
            (View::Comments, "a"),
            (View::Favorites, "a"),
            (View::Articles, ""),
        ] {
            assert_eq!(item_key(view, bad), None, "{view:?} {bad}");
        }
    }

    #[test]
    fn limits_are_one_to_a_hundred() {
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some("1".into())).ok(), Some(1));
        assert_eq!(limit(Some("+100".into())).ok(), Some(100));
        for bad in [
            "",
            "0",
            "101",
            "-1",
            "x",
            "1.5",
            "99999999999999999999999",
            "-",
            "+",
        ] {
            let error = limit(Some(bad.into())).expect_err(bad);
            assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }

    #[test]
    fn private_views_show_email_and_public_ones_never_do() {
        let user = key([
            (users::USER_ID, s("u1")),
            (users::EMAIL, s("u1@example.test")),
            (users::USERNAME, s("u1name")),
            (users::LAST_SEQ, AttributeValue::N("3".into())),
            ("passwordHash", s("$argon2id$secret")),
        ]);
        let private = View::Users.shape(&user).expect("shown");
        assert_eq!(private["email"], "u1@example.test");
        assert_eq!(private["userId"], "u1");
        let public = View::Profiles.shape(&user).expect("shown");
        assert!(public.get("email").is_none());
        for shown in [private, public] {
            let text = shown.to_string();
            assert!(
                !text.contains("argon2") && !text.contains("lastSeq"),
                "{text}"
            );
        }
    }

    #[test]
    fn article_tombstones_are_not_shown() {
        let tombstone = key([
            (articles::ARTICLE_ID, s("a1")),
            (articles::DELETED, AttributeValue::Bool(true)),
        ]);
        assert_eq!(View::Articles.shape(&tombstone), None);
    }

    #[test]
    fn views_name_their_projection_in_the_path() {
        let of = |path: &str| projections_of(&path.parse::<Uri>().expect("uri"));
        assert_eq!(of("/api/views/feeds"), &[Projection::Feed]);
        assert_eq!(of("/api/views/comments/a:1"), &[Projection::Articles]);
        assert_eq!(of("/api/views/profiles?limit=2"), &[Projection::Users]);
        assert_eq!(of("/api/views/tags"), &[Projection::Search]);
        assert!(of("/api/views").is_empty());
        assert!(of("/api/views/nope").is_empty());
        for view in View::ALL {
            assert_eq!(View::named(view.name()), Some(view));
        }
    }
}
