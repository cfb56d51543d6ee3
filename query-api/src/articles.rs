//! `GET /articles` and `GET /articles/{slug}`.
//!
//! A list is one search (which ids, in which order, how many in all) and one `BatchGetItem`
//! for everything shown: the articles, their authors, the caller's follows of those authors
//! and the caller's favorites of those articles. An `author` or `favorited` filter first
//! resolves the username (one `Query`), and `favorited` then reads the user's favorites (one
//! `Query` per MB of ids). So a page costs the same few requests whatever its size. It never
//! reads a body (they are items of their own), so its read units do not grow with them either.
//!
//! One article is a `Query` on `bySlug` and one `BatchGetItem` for its item, body, author and
//! the caller's follow; with a caller, the article item and the caller's favorite come instead
//! from one `TransactGetItems` sent beside it, so the flag and the count always agree.
//!
//! The feed (`GET /articles/feed`, in [`crate::feed`]) pages the same way and shows its
//! items through [`list_items`].

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use common::auth::MaybeAuthUser;
use common::error::ApiError;
use common::responses::{
    ArticleBody, MultipleArticlesResponse, ProfileBody, SingleArticleResponse,
};
use events::views::articles::ArticleView;
use events::views::users::UserView;
use search::ArticleQuery;
use serde::Deserialize;

use crate::readers::{Found, Lookup};
use crate::AppState;

/// Articles per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 20;
/// A larger `limit` is served as this many (clamped, not refused): a page is one
/// `BatchGetItem` of at most 4 keys per article.
pub const MAX_LIMIT: usize = 100;
/// A larger `offset` is refused (422): search engines do not page deeper than 10,000 hits.
pub const MAX_OFFSET: usize = 10_000;

#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<Json<SingleArticleResponse>, ApiError> {
    Ok(Json(article(&state, caller.user_id(), &slug).await?))
}

#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<MultipleArticlesResponse>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
    let filter = ArticleFilter::parse(params)?;
    Ok(Json(articles(&state, caller.user_id(), &filter).await?))
}

/// The query string of `GET /articles`, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    pub tag: Option<String>,
    pub author: Option<String>,
    pub favorited: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// A valid `GET /articles` query. An empty parameter (`?tag=`) is no filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArticleFilter {
    pub tag: Option<String>,
    /// A username.
    pub author: Option<String>,
    /// A username.
    pub favorited: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl ArticleFilter {
    /// `limit` and `offset` as [`paging`] reads them.
    pub fn parse(params: ListParams) -> Result<Self, ApiError> {
        let (limit, offset) = paging(params.limit, params.offset)?;
        Ok(Self {
            tag: present(params.tag),
            author: present(params.author),
            favorited: present(params.favorited),
            limit,
            offset,
        })
    }
}

/// A query parameter that is given and not empty (`?tag=` is no parameter).
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The `(limit, offset)` of a page of articles (`GET /articles`, `GET /articles/feed`).
/// `limit`: an integer of at least 1, default 20, clamped to 100. `offset`: an integer from 0
/// to 10,000, default 0. An empty one (`?limit=`) is not an integer: the document says
/// integer, and only a string filter may be empty. Both problems are reported at once (422).
pub(crate) fn paging(
    limit: Option<String>,
    offset: Option<String>,
) -> Result<(usize, usize), ApiError> {
    let mut problems = std::collections::BTreeMap::new();
    let limit = match limit.map(|raw| integer(&raw)) {
        None => DEFAULT_LIMIT,
        Some(None) => {
            problems.insert("limit".to_owned(), vec!["must be an integer".to_owned()]);
            DEFAULT_LIMIT
        }
        Some(Some(n)) if n < 1 => {
            problems.insert("limit".to_owned(), vec!["must be at least 1".to_owned()]);
            DEFAULT_LIMIT
        }
        Some(Some(n)) => n.min(MAX_LIMIT as i128) as usize,
    };
    let offset = match offset.map(|raw| integer(&raw)) {
        None => 0,
        Some(None) => {
            problems.insert("offset".to_owned(), vec!["must be an integer".to_owned()]);
            0
        }
        Some(Some(n)) if n < 0 => {
            problems.insert("offset".to_owned(), vec!["must be at least 0".to_owned()]);
            0
        }
        Some(Some(n)) if n > MAX_OFFSET as i128 => {
            problems.insert(
                "offset".to_owned(),
                vec![format!("must be at most {MAX_OFFSET}")],
            );
            0
        }
        Some(Some(n)) => n as usize,
    };
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }
    Ok((limit, offset))
}

/// A decimal integer with an optional sign; one too large for `u64` saturates (it is out of
/// range either way). `None` for anything else.
fn integer(raw: &str) -> Option<i128> {
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = i128::from(digits.parse::<u64>().unwrap_or(u64::MAX));
    Some(if negative { -magnitude } else { magnitude })
}

/// One article by slug, with the caller's `favorited` and `following`.
pub async fn article(
    state: &AppState,
    caller: Option<&str>,
    slug: &str,
) -> Result<SingleArticleResponse, ApiError> {
    // The index only finds the id: it is updated after the table, so its copy of the item
    // can lag behind the favorites table and show `favorited` without the favorite in
    // `favoritesCount`. The item itself comes from the table, in the same batch as the flags.
    let readers = state.readers().await?;
    let indexed = readers
        .article_by_slug(slug)
        .await?
        .ok_or(ApiError::NotFound("article"))?;
    let id = &indexed.article_id;
    let wanted = Lookup {
        caller: caller.map(str::to_owned),
        articles: vec![id.clone()],
        bodies: vec![id.clone()],
        users: vec![indexed.author_id.clone()],
        follows: vec![indexed.author_id.clone()],
        favorites: vec![id.clone()],
        ..Lookup::default()
    };
    let mut found = match caller {
        None => readers.lookup(&wanted).await?,
        // The caller's flag and the count must agree: read those two items in one
        // transaction, the rest beside it.
        Some(caller) => {
            let rest = Lookup {
                articles: Vec::new(),
                favorites: Vec::new(),
                ..wanted
            };
            let (mut found, (article, favorited)) = tokio::try_join!(
                readers.lookup(&rest),
                readers.article_and_favorite(id, caller)
            )?;
            found.articles.extend(article.map(|a| (id.clone(), a)));
            if favorited {
                found.favorited.insert(id.clone());
            }
            found
        }
    };
    let Some(article) = found.articles.remove(&indexed.article_id) else {
        // In the index but no longer in the table: deleted a moment ago.
        return Err(ApiError::NotFound("article"));
    };
    let Some(author) = found.users.remove(&article.author_id) else {
        // The users projection has not caught up with the author yet: not visible yet.
        tracing::warn!(article = %article.article_id, author = %article.author_id, "author not projected yet");
        return Err(ApiError::NotFound("article"));
    };
    let Some(body) = found.bodies.remove(&article.article_id) else {
        // Written in the same transaction as the article item, so missing only while a read
        // lags behind a write: the article was just deleted (or just published).
        tracing::warn!(article = %article.article_id, "body not found");
        return Err(ApiError::NotFound("article"));
    };
    Ok(SingleArticleResponse {
        article: article_body(article, Some(body.body), &author, &found),
    })
}

/// A page of articles, newest first, without their bodies.
pub async fn articles(
    state: &AppState,
    caller: Option<&str>,
    filter: &ArticleFilter,
) -> Result<MultipleArticlesResponse, ApiError> {
    let nothing = MultipleArticlesResponse {
        articles: Vec::new(),
        articles_count: 0,
    };
    let readers = state.readers().await?;
    let author_id = match &filter.author {
        None => None,
        Some(username) => match readers.user_by_username(username).await? {
            Some(user) => Some(user.user_id),
            None => return Ok(nothing),
        },
    };
    let article_ids = match &filter.favorited {
        None => None,
        Some(username) => {
            let Some(user) = readers.user_by_username(username).await? else {
                return Ok(nothing);
            };
            let ids = readers.favorited_article_ids(&user.user_id).await?;
            if ids.is_empty() {
                return Ok(nothing);
            }
            Some(ids)
        }
    };
    let page = state
        .search()
        .await?
        .search(&ArticleQuery {
            tag: filter.tag.clone(),
            author_id,
            article_ids,
            limit: filter.limit,
            offset: filter.offset,
        })
        .await
        .map_err(crate::search_failed)?;
    if page.hits.is_empty() {
        return Ok(MultipleArticlesResponse {
            articles: Vec::new(),
            articles_count: page.total,
        });
    }
    let shown = page
        .hits
        .iter()
        .map(|hit| (hit.author_id.as_str(), hit.article_id.as_str()));
    let mut found = readers.lookup(&list_lookup(caller, shown)).await?;
    // Search order; an article the search still knows but the articles table no longer has
    // (the two projections converge independently) is left out.
    let listed: Vec<ArticleView> = page
        .hits
        .iter()
        .filter_map(|hit| found.articles.remove(&hit.article_id))
        .collect();
    Ok(MultipleArticlesResponse {
        articles: list_items(listed, &found),
        articles_count: page.total,
    })
}

/// What a list page of these `(author id, article id)` needs to show them to `caller`: the
/// articles items, the authors, the caller's follows of the authors and favorites of the
/// articles.
pub(crate) fn list_lookup<'a>(
    caller: Option<&str>,
    shown: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Lookup {
    let (mut authors, ids): (Vec<String>, Vec<String>) = shown
        .into_iter()
        .map(|(author, article)| (author.to_owned(), article.to_owned()))
        .unzip();
    authors.sort_unstable();
    authors.dedup();
    Lookup {
        caller: caller.map(str::to_owned),
        articles: ids.clone(),
        users: authors.clone(),
        follows: authors,
        favorites: ids,
        ..Lookup::default()
    }
}

/// The items of a list page (no bodies), in the order given, as the caller in `found` sees
/// them; an article whose author `found` lacks (not projected yet) is left out.
pub(crate) fn list_items(
    listed: impl IntoIterator<Item = ArticleView>,
    found: &Found,
) -> Vec<ArticleBody> {
    listed
        .into_iter()
        .filter_map(|article| {
            let author = found.users.get(&article.author_id)?;
            Some(article_body(article, None, author, found))
        })
        .collect()
}

/// The RealWorld article as `caller` sees it (the caller in `found`), with `body` if given.
fn article_body(
    article: ArticleView,
    body: Option<String>,
    author: &UserView,
    found: &Found,
) -> ArticleBody {
    ArticleBody {
        favorited: found.favorited.contains(&article.article_id),
        slug: article.slug,
        title: article.title,
        description: article.description,
        body,
        tag_list: article.tag_list,
        created_at: article.created_at,
        updated_at: article.updated_at,
        favorites_count: article.favorites_count,
        author: profile(author, found),
    }
}

/// The RealWorld profile of `user`, `following` as the caller in `found` sees it.
pub(crate) fn profile(user: &UserView, found: &Found) -> ProfileBody {
    ProfileBody {
        username: user.username.clone(),
        bio: user.bio.clone(),
        image: user.image.clone(),
        following: found.followed.contains(&user.user_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(limit: Option<&str>, offset: Option<&str>) -> Result<ArticleFilter, ApiError> {
        ArticleFilter::parse(ListParams {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
            ..ListParams::default()
        })
    }

    fn problems(result: Result<ArticleFilter, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Unprocessable(fields)) => fields.into_keys().collect(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_clamping() {
        let filter = parse(None, None).expect("valid");
        assert_eq!((filter.limit, filter.offset), (DEFAULT_LIMIT, 0));
        let filter = parse(Some("1"), Some("10000")).expect("valid");
        assert_eq!((filter.limit, filter.offset), (1, 10_000));
        assert_eq!(parse(Some("101"), None).expect("clamped").limit, MAX_LIMIT);
        assert_eq!(
            parse(Some("99999999999999999999999"), None)
                .expect("clamped")
                .limit,
            MAX_LIMIT
        );
        assert_eq!(parse(Some("+5"), None).expect("signed").limit, 5);
    }

    #[test]
    fn invalid_limits_and_offsets_are_422_naming_the_field() {
        for bad in ["", "0", "-1", "abc", "1.5", " 5", "-", "0x10"] {
            assert_eq!(problems(parse(Some(bad), None)), ["limit"], "{bad:?}");
        }
        for bad in ["", "-1", "x", "10001", "99999999999999999999999"] {
            assert_eq!(problems(parse(None, Some(bad))), ["offset"], "{bad:?}");
        }
        assert_eq!(problems(parse(Some("0"), Some("-1"))), ["limit", "offset"]);
    }

    #[test]
    fn empty_filters_are_no_filters() {
        let filter = ArticleFilter::parse(ListParams {
            tag: Some(String::new()),
            author: Some(String::new()),
            favorited: Some("jake".into()),
            ..ListParams::default()
        })
        .expect("valid");
        assert_eq!(filter.tag, None);
        assert_eq!(filter.author, None);
        assert_eq!(filter.favorited.as_deref(), Some("jake"));
    }
}
