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
}
