//! The RealWorld response bodies both sides answer with, defined once so they cannot drift.

use serde::Serialize;

/// The RealWorld `User` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserBody {
    pub email: String,
    pub token: String,
    pub username: String,
    pub bio: String,
    pub image: String,
}

/// `{"user": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserResponse {
    pub user: UserBody,
}

/// The RealWorld `Profile` object, with `following` for the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileBody {
    pub username: String,
    pub bio: String,
    pub image: String,
    pub following: bool,
}

/// `{"profile": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileResponse {
    pub profile: ProfileBody,
}

/// The RealWorld `Article` object. `body` is left out of lists (`MultipleArticlesResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleBody {
    pub slug: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Sorted.
    pub tag_list: Vec<String>,
    /// ISO 8601 with milliseconds.
    pub created_at: String,
    pub updated_at: String,
    pub favorited: bool,
    pub favorites_count: u64,
    pub author: ProfileBody,
}

/// `{"article": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SingleArticleResponse {
    pub article: ArticleBody,
}

/// `{"articles": [...], "articlesCount": n}`: `articlesCount` is the number of all matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultipleArticlesResponse {
    pub articles: Vec<ArticleBody>,
    pub articles_count: u64,
}

/// The RealWorld `Comment` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentBody {
    pub id: u64,
    pub created_at: String,
    pub updated_at: String,
    pub body: String,
    pub author: ProfileBody,
}

/// `{"comment": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SingleCommentResponse {
    pub comment: CommentBody,
}

/// `{"comments": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MultipleCommentsResponse {
    pub comments: Vec<CommentBody>,
}

/// `{"tags": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagsResponse {
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_the_contract() {
        let user = UserResponse {
            user: UserBody {
                email: "e".into(),
                token: "t".into(),
                username: "u".into(),
                bio: "b".into(),
                image: "i".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&user).expect("json"),
            serde_json::json!({"user": {"email": "e", "token": "t", "username": "u", "bio": "b", "image": "i"}})
        );
        let profile = ProfileResponse {
            profile: ProfileBody {
                username: "u".into(),
                bio: "b".into(),
                image: "i".into(),
                following: true,
            },
        };
        assert_eq!(
            serde_json::to_value(&profile).expect("json"),
            serde_json::json!({"profile": {"username": "u", "bio": "b", "image": "i", "following": true}})
        );
    }

    #[test]
    fn article_lists_leave_the_body_out() {
        let author = ProfileBody {
            username: "u".into(),
            bio: "".into(),
            image: "".into(),
            following: false,
        };
        let mut article = ArticleBody {
            slug: "s".into(),
            title: "t".into(),
            description: "d".into(),
            body: None,
            tag_list: vec!["a".into(), "b".into()],
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
            favorited: false,
            favorites_count: 2,
            author,
        };
        let listed = serde_json::to_value(MultipleArticlesResponse {
            articles: vec![article.clone()],
            articles_count: 7,
        })
        .expect("json");
        assert_eq!(listed["articlesCount"], 7);
        assert!(listed["articles"][0].get("body").is_none());
        assert_eq!(
            listed["articles"][0]["tagList"],
            serde_json::json!(["a", "b"])
        );
        assert_eq!(listed["articles"][0]["favoritesCount"], 2);
        article.body = Some("b".into());
        let single = serde_json::to_value(SingleArticleResponse { article }).expect("json");
        assert_eq!(single["article"]["body"], "b");
        assert_eq!(single["article"]["createdAt"], "2024-01-01T00:00:00.000Z");
    }
}
