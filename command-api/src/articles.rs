//! `POST /articles`, `PUT` and `DELETE /articles/{slug}`, and the lookups the article routes share.

use std::future::Future;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::auth::AuthUser;
use common::error::{ApiError, JsonBody};
use common::responses::{ArticleBody, ProfileBody, SingleArticleResponse};
use events::article::{
    self, slug_key, slugify, Article, ArticleCommand, ArticleError, Body, Description, Title,
    RESERVED_SLUGS,
};
use events::favorite::{favorite_id, Favorite};
use events::time_format;
use events::user::User;
use events::{RepositoryError, StoreError};
use rand::Rng;
use serde::Deserialize;
use uuid::Uuid;

use crate::errors::{article_error, favorite_error, store_error, user_error, FieldErrorList};
use crate::users::metadata;
use crate::written::Written;
use crate::AppState;

/// How many slugs one publish or edit tries: the title's own, then suffixed ones.
const SLUG_ATTEMPTS: usize = 5;
/// Length of the random suffix of a taken slug.
const SUFFIX_CHARS: usize = 6;
const SUFFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub article: T,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewArticle {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    tag_list: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateArticle {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
}

/// A `NewArticle` whose every field passed.
#[derive(Debug, PartialEq)]
struct ValidNewArticle {
    title: Title,
    description: Description,
    body: Body,
    tag_list: Vec<String>,
}

/// An `UpdateArticle` whose given fields passed (none given: nothing to change).
#[derive(Debug, PartialEq)]
struct ValidUpdate {
    title: Option<Title>,
    description: Option<Description>,
    body: Option<Body>,
}

fn parse_new(input: NewArticle) -> Result<ValidNewArticle, ApiError> {
    let mut errors = FieldErrorList::default();
    let title = errors.check(Title::parse(input.title.as_deref().unwrap_or("")));
    let description = errors.check(Description::parse(
        input.description.as_deref().unwrap_or(""),
    ));
    let body = errors.check(Body::parse(input.body.as_deref().unwrap_or("")));
    let tag_list = errors.check(article::normalize_tags(input.tag_list.unwrap_or_default()));
    errors.into_result()?;
    match (title, description, body, tag_list) {
        (Some(title), Some(description), Some(body), Some(tag_list)) => Ok(ValidNewArticle {
            title,
            description,
            body,
            tag_list,
        }),
        _ => Err(ApiError::internal("validated fields missing")),
    }
}

fn parse_update(input: UpdateArticle) -> Result<ValidUpdate, ApiError> {
    let mut errors = FieldErrorList::default();
    let title = input
        .title
        .as_deref()
        .and_then(|raw| errors.check(Title::parse(raw)));
    let description = input
        .description
        .as_deref()
        .and_then(|raw| errors.check(Description::parse(raw)));
    let body = input
        .body
        .as_deref()
        .and_then(|raw| errors.check(Body::parse(raw)));
    // No field is a valid update that changes nothing, like an edit to the same values.
    errors.into_result()?;
    Ok(ValidUpdate {
        title,
        description,
        body,
    })
}

fn random_suffix(rng: &mut impl Rng) -> String {
    (0..SUFFIX_CHARS)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())]))
        .collect()
}

/// The slug to try at `attempt` (from 0): the title's own slug, then `<slug>-<random suffix>`
/// (a title "Feed" gets `feed-<suffix>`: reserved slugs name routes).
fn slug_candidate(base: &str, attempt: usize) -> String {
    if attempt == 0 && !RESERVED_SLUGS.contains(&base) {
        base.to_owned()
    } else {
        format!("{base}-{}", random_suffix(&mut rand::rng()))
    }
}

/// Whether `slug` is what [`slug_candidate`] could have made of `base`: a title edit that
/// keeps the title's slug keeps the article's slug, suffix and all.
fn is_candidate_of(slug: &str, base: &str) -> bool {
    match slug.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('-').is_some_and(|suffix| {
            suffix.len() == SUFFIX_CHARS && suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b))
        }),
        None => false,
    }
}

/// Runs `attempt` with one candidate slug after another until one is not taken. A slug taken
/// between two racing requests shows up as a refused claim in the append, so both succeed.
async fn with_free_slug<T, F, Fut>(base: &str, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, RepositoryError<ArticleError>>>,
{
    for n in 0..SLUG_ATTEMPTS {
        let slug = slug_candidate(base, n);
        let key = slug_key(&slug);
        match attempt(slug).await {
            Err(RepositoryError::Store(StoreError::UniqueTaken { key: taken })) if taken == key => {
                tracing::debug!(%key, "slug taken; trying another");
            }
            other => return other.map_err(article_error),
        }
    }
    Err(ApiError::Conflict(format!(
        "no free slug for {base} in {SLUG_ATTEMPTS} attempts"
    )))
}

/// Now, as the events store it.
pub(crate) fn now() -> String {
    time_format::format_millis(time_format::now_millis())
}

/// The id of the article holding `slug`, from the write side's claims (a deleted article has
/// released its slug).
pub(crate) async fn article_id_of(state: &AppState, slug: &str) -> Result<String, ApiError> {
    let owner = state
        .repository
        .store()
        .owner_of(&slug_key(slug))
        .await
        .map_err(store_error)?;
    owner
        .as_deref()
        .and_then(|o| o.strip_prefix("Article#"))
        .map(str::to_owned)
        .ok_or(ApiError::NotFound("article"))
}

/// The id and state of the live article holding `slug`.
pub(crate) async fn live_article(
    state: &AppState,
    slug: &str,
) -> Result<(String, Article), ApiError> {
    let article_id = article_id_of(state, slug).await?;
    let article = state
        .repository
        .load::<Article>(&article_id)
        .await
        .map_err(article_error)?
        .state;
    if article.is_live() {
        Ok((article_id, article))
    } else {
        Err(ApiError::NotFound("article"))
    }
}

/// A registered user's state, from the write side.
pub(crate) async fn registered_user(state: &AppState, user_id: &str) -> Result<User, ApiError> {
    let user = state
        .repository
        .load::<User>(user_id)
        .await
        .map_err(user_error)?
        .state;
    if user.is_registered() {
        Ok(user)
    } else {
        Err(ApiError::NotFound("user"))
    }
}

pub(crate) fn profile(user: &User, following: bool) -> ProfileBody {
    ProfileBody {
        username: user.username.clone(),
        bio: user.bio.clone(),
        image: user.image.clone(),
        following,
    }
}

/// The profile of `author_id` as `viewer` sees it.
pub(crate) async fn author_profile(
    state: &AppState,
    author_id: &str,
    viewer: &User,
) -> Result<ProfileBody, ApiError> {
    if viewer.id.as_deref() == Some(author_id) {
        return Ok(profile(viewer, false));
    }
    let author = registered_user(state, author_id).await?;
    Ok(profile(&author, viewer.following.contains(author_id)))
}

/// The RealWorld article (body included) for an article's state.
pub(crate) fn article_body(
    article: &Article,
    favorited: bool,
    favorites_count: u64,
    author: ProfileBody,
) -> ArticleBody {
    ArticleBody {
        slug: article.slug.clone(),
        title: article.title.clone(),
        description: article.description.clone(),
        body: Some(article.body.clone()),
        tag_list: article.tag_list.clone(),
        created_at: article.created_at.clone(),
        updated_at: article.updated_at.clone(),
        favorited,
        favorites_count,
        author,
    }
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    JsonBody(Envelope { article: input }): JsonBody<Envelope<NewArticle>>,
) -> Result<Written<(StatusCode, Json<SingleArticleResponse>)>, ApiError> {
    let input = parse_new(input)?;
    let author = registered_user(&state, &caller.user_id).await?;
    let article_id = Uuid::new_v4().to_string();
    let at = now();
    let base = slugify(input.title.as_str());
    let executed = with_free_slug(&base, |slug| {
        state.repository.execute::<Article>(
            &article_id,
            ArticleCommand::Publish {
                article_id: article_id.clone(),
                author_id: caller.user_id.clone(),
                slug,
                title: input.title.clone(),
                description: input.description.clone(),
                body: input.body.clone(),
                tag_list: input.tag_list.clone(),
                at: at.clone(),
            },
            metadata(&headers, Some(&caller.user_id)),
        )
    })
    .await?;
    let response = (
        StatusCode::CREATED,
        Json(SingleArticleResponse {
            article: article_body(&executed.state, false, 0, profile(&author, false)),
        }),
    );
    Ok(Written::after(&article_id, &executed, response))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
    JsonBody(Envelope { article: input }): JsonBody<Envelope<UpdateArticle>>,
) -> Result<Written<Json<SingleArticleResponse>>, ApiError> {
    let input = parse_update(input)?;
    let article_id = article_id_of(&state, &slug).await?;
    // `slug` is the article's current slug: it owns the claim.
    let base = input
        .title
        .as_ref()
        .map(|title| slugify(title.as_str()))
        .filter(|base| !is_candidate_of(&slug, base));
    let edit = |new_slug: Option<String>| {
        state.repository.execute::<Article>(
            &article_id,
            ArticleCommand::Edit {
                actor_id: caller.user_id.clone(),
                title: input.title.clone(),
                description: input.description.clone(),
                body: input.body.clone(),
                slug: new_slug,
                at: now(),
            },
            metadata(&headers, Some(&caller.user_id)),
        )
    };
    let executed = match base {
        Some(base) => with_free_slug(&base, |candidate| edit(Some(candidate))).await?,
        None => edit(None).await.map_err(article_error)?,
    };

    // Only the author may edit: the caller's own profile is the author's.
    let favorite = favorite_id(&article_id, &caller.user_id);
    let (caller_user, favorite, favorites_count) = tokio::try_join!(
        registered_user(&state, &caller.user_id),
        async {
            state
                .repository
                .load::<Favorite>(&favorite)
                .await
                .map_err(favorite_error)
        },
        state.favorite_counts.projected(&article_id),
    )?;
    let response = Json(SingleArticleResponse {
        article: article_body(
            &executed.state,
            favorite.state.favorited,
            favorites_count,
            profile(&caller_user, false),
        ),
    });
    Ok(Written::after(&article_id, &executed, response))
}

#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Written<StatusCode>, ApiError> {
    let article_id = article_id_of(&state, &slug).await?;
    let executed = state
        .repository
        .execute::<Article>(
            &article_id,
            ArticleCommand::Delete {
                actor_id: caller.user_id.clone(),
                at: now(),
            },
            metadata(&headers, Some(&caller.user_id)),
        )
        .await
        .map_err(article_error)?;
    Ok(Written::after(
        &article_id,
        &executed,
        StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn unprocessable(
        result: Result<impl std::fmt::Debug, ApiError>,
    ) -> BTreeMap<String, Vec<String>> {
        match result {
            Err(ApiError::Unprocessable(fields)) => fields,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn new_article(json: serde_json::Value) -> NewArticle {
        serde_json::from_value(json).expect("NewArticle shape")
    }

    fn update(json: serde_json::Value) -> UpdateArticle {
        serde_json::from_value(json).expect("UpdateArticle shape")
    }

    #[test]
    fn a_new_article_is_trimmed_and_its_tags_normalized() {
        let valid = parse_new(new_article(serde_json::json!({
            "title": " How to train your dragon ",
            "description": "Ever wonder how?",
            "body": "You have to believe",
            "tagList": ["training", " dragons", "training", ""]
        })))
        .expect("valid");
        assert_eq!(valid.title.as_str(), "How to train your dragon");
        assert_eq!(valid.tag_list, vec!["dragons", "training"]);
    }

    #[test]
    fn tags_are_optional() {
        let valid = parse_new(new_article(serde_json::json!({
            "title": "t", "description": "d", "body": "b"
        })))
        .expect("valid");
        assert!(valid.tag_list.is_empty());
    }

    #[test]
    fn every_invalid_field_of_a_new_article_is_reported_at_once() {
        let fields = unprocessable(parse_new(new_article(serde_json::json!({
            "title": "  ",
            "body": "b".repeat(article::MAX_BODY_CHARS + 1),
            "tagList": ["t".repeat(article::MAX_TAG_CHARS + 1)]
        }))));
        assert_eq!(fields["title"], vec!["can't be blank"]);
        assert_eq!(fields["description"], vec!["can't be blank"]);
        assert_eq!(fields["body"], vec!["is too long"]);
        assert_eq!(fields["tagList"], vec!["has a tag that is too long"]);
    }

    #[test]
    fn an_update_takes_only_the_fields_given() {
        let valid = parse_update(update(serde_json::json!({"body": " new body "}))).expect("valid");
        assert_eq!(
            valid,
            ValidUpdate {
                title: None,
                description: None,
                body: Some(Body::parse("new body").expect("body")),
            }
        );
    }

    #[test]
    fn an_update_without_fields_changes_nothing() {
        let none = ValidUpdate {
            title: None,
            description: None,
            body: None,
        };
        let empty = parse_update(update(serde_json::json!({}))).expect("accepted");
        assert_eq!(empty, none);
        // Unknown fields (tags are not editable) are ignored.
        let tags = parse_update(update(serde_json::json!({"tagList": ["a"]}))).expect("accepted");
        assert_eq!(tags, none);
    }

    #[test]
    fn blank_or_overlong_update_fields_are_refused_together() {
        let fields = unprocessable(parse_update(update(serde_json::json!({
            "title": "",
            "description": "d".repeat(article::MAX_DESCRIPTION_CHARS + 1),
            "body": "fine"
        }))));
        assert_eq!(fields["title"], vec!["can't be blank"]);
        assert_eq!(fields["description"], vec!["is too long"]);
        assert!(!fields.contains_key("body"));
    }

    #[test]
    fn the_first_candidate_is_the_title_slug_then_suffixed_ones() {
        assert_eq!(slug_candidate("dragons", 0), "dragons");
        let feed = slug_candidate("feed", 0);
        assert!(is_candidate_of(&feed, "feed") && feed != "feed", "{feed}");
        let second = slug_candidate("dragons", 1);
        let suffix = second.strip_prefix("dragons-").expect("suffixed");
        assert_eq!(suffix.len(), SUFFIX_CHARS);
        assert!(suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert!(is_candidate_of(&second, "dragons"));
        // Suffixes are random: a handful of them are not all the same.
        let distinct: std::collections::BTreeSet<String> =
            (0..8).map(|_| slug_candidate("dragons", 1)).collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn every_candidate_is_a_slug_the_events_accept() {
        // Posted events are held to `check_slug`: commands must never produce less.
        for base in [
            "dragons",
            "feed",
            &slugify(&"Long title, many words ".repeat(9)),
        ] {
            for attempt in 0..SLUG_ATTEMPTS {
                let slug = slug_candidate(base, attempt);
                assert_eq!(article::check_slug(&slug), Ok(()), "{slug}");
            }
        }
    }

    #[test]
    fn only_the_title_slug_and_its_suffixed_forms_are_candidates() {
        assert!(is_candidate_of("dragons", "dragons"));
        assert!(is_candidate_of("dragons-a1b2c3", "dragons"));
        assert!(!is_candidate_of("dragons-training", "dragons"));
        assert!(!is_candidate_of("dragons-A1B2C3", "dragons"));
        assert!(!is_candidate_of("dragons-a1b2c3d", "dragons"));
        assert!(!is_candidate_of("dragonsa1b2c3", "dragons"));
        assert!(!is_candidate_of("dragon", "dragons"));
    }

    #[tokio::test]
    async fn a_taken_slug_is_retried_with_a_suffix() {
        let mut tried = Vec::new();
        let result = with_free_slug("dragons", |slug| {
            tried.push(slug.clone());
            let taken = tried.len() < 3;
            async move {
                if taken {
                    Err(RepositoryError::Store(StoreError::UniqueTaken {
                        key: slug_key(&slug),
                    }))
                } else {
                    Ok(slug)
                }
            }
        })
        .await
        .expect("a free slug");
        assert_eq!(tried.len(), 3);
        assert_eq!(tried[0], "dragons");
        assert_eq!(result, tried[2]);
        assert!(is_candidate_of(&result, "dragons") && result != "dragons");
    }

    #[tokio::test]
    async fn slug_attempts_are_bounded() {
        let mut attempts = 0;
        let result: Result<(), ApiError> = with_free_slug("dragons", |slug| {
            attempts += 1;
            async move {
                Err(RepositoryError::Store(StoreError::UniqueTaken {
                    key: slug_key(&slug),
                }))
            }
        })
        .await;
        assert!(matches!(result, Err(ApiError::Conflict(_))));
        assert_eq!(attempts, SLUG_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_failures_are_not_retried() {
        let mut attempts = 0;
        let result: Result<(), ApiError> = with_free_slug("dragons", |_| {
            attempts += 1;
            async { Err(RepositoryError::Domain(ArticleError::Forbidden)) }
        })
        .await;
        assert!(matches!(result, Err(ApiError::Forbidden)));
        // Another key taken (not the slug tried) is not a reason to try another slug either.
        let result: Result<(), ApiError> = with_free_slug("dragons", |_| {
            attempts += 1;
            async {
                Err(RepositoryError::Store(StoreError::UniqueTaken {
                    key: slug_key("something-else"),
                }))
            }
        })
        .await;
        assert!(matches!(result, Err(ApiError::Unprocessable(_))));
        assert_eq!(attempts, 2);
    }
}
