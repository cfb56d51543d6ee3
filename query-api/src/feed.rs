//! `GET /articles/feed`: the articles of the authors the caller follows, newest first.
//!
//! The feed projector keeps one small entry per (reader, article of an author they follow) in
//! `feeds`, sorted by creation, and one copy of each live article (without its body) in
//! `feed-articles`. A page is two `Query`s of the caller's entries sent side by side (a
//! `COUNT` of them all, and a backwards one that stops at the page's last entry) and one
//! `BatchGetItem` for everything shown:
//! the page's feed articles, their authors, the caller's follows of those authors, the caller's
//! favorites of those articles, and their `articles` items, read only for `favoritesCount`
//! (the content always comes from `feed-articles`). A page holds at most 5 keys per entry, so
//! the default page of 20 is one `BatchGetItem`; a page of 100 may take up to 5.
//!
//! An entry whose feed article is missing or being deleted is left out: its removal from the
//! feed is under way. So is one whose `articles` item is already a tombstone: a delete answers
//! once the articles projection has applied it, and the feed projector's removal of the
//! entries from every follower's feed may take longer. `articlesCount` counts the entries.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use common::auth::AuthUser;
use common::error::ApiError;
use common::responses::MultipleArticlesResponse;
use events::views::articles::ArticleView;
use events::views::feed_articles::FeedArticle;
use serde::Deserialize;

use crate::articles::{list_items, list_lookup, paging};
use crate::readers::{Found, Lookup};
use crate::AppState;

/// The query string of `GET /articles/feed`, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FeedParams {
    pub limit: Option<String>,
    pub offset: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Json<MultipleArticlesResponse>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
    let (limit, offset) = paging(params.limit, params.offset)?;
    Ok(Json(feed(&state, &caller.user_id, limit, offset).await?))
}

/// The page `offset..offset + limit` of `caller`'s feed, newest first.
pub async fn feed(
    state: &AppState,
    caller: &str,
    limit: usize,
    offset: usize,
) -> Result<MultipleArticlesResponse, ApiError> {
    let page = state
        .readers()
        .await?
        .feed_page(caller, offset, limit)
        .await?;
    if page.entries.is_empty() {
        return Ok(MultipleArticlesResponse {
            articles: Vec::new(),
            articles_count: page.total,
        });
    }
    let shown = page
        .entries
        .iter()
        .map(|entry| (entry.author_id.as_str(), entry.article_id.as_str()));
    let mut found = state
        .readers()
        .await?
        .lookup(&Lookup {
            feed_articles: page
                .entries
                .iter()
                .map(|entry| (entry.author_id.clone(), entry.article_id.clone()))
                .collect(),
            ..list_lookup(Some(caller), shown)
        })
        .await?;
    let mut feed_articles = std::mem::take(&mut found.feed_articles);
    let listed: Vec<ArticleView> = page
        .entries
        .iter()
        .filter(|entry| !found.deleted.contains(&entry.article_id))
        .filter_map(|entry| feed_articles.remove(&entry.article_id))
        .map(|article| as_listed(article, &found))
        .collect();
    Ok(MultipleArticlesResponse {
        articles: list_items(listed, &found),
        articles_count: page.total,
    })
}

/// A feed article as a list shows it, with the favorites count of its `articles` item (0 when
/// the articles projection has none yet).
fn as_listed(article: FeedArticle, found: &Found) -> ArticleView {
    let favorites_count = found
        .favorites_counts
        .get(&article.article_id)
        .copied()
        .unwrap_or(0);
    ArticleView {
        article_id: article.article_id,
        slug: article.slug,
        title: article.title,
        description: article.description,
        tag_list: article.tag_list,
        author_id: article.author_id,
        created_at: article.created_at,
        updated_at: article.updated_at,
        favorites_count,
        last_seq: article.last_seq,
    }
}
