//! The `User` aggregate: registration, profile changes and who the user follows.

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{EventSchema, UniqueChange, Upcaster};
use crate::snapshot::Snapshotted;

/// The aggregate type name, the prefix of every user stream key.
pub const AGGREGATE_TYPE: &str = "User";

/// The unique key an email claims (emails compare case-insensitively).
pub fn email_key(email: &str) -> String {
    format!("email#{}", email.to_lowercase())
}

/// The unique key a username claims.
pub fn username_key(username: &str) -> String {
    format!("username#{username}")
}

/// A syntactically valid email address, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Parses an address: one `@` with text on both sides, a dot in the domain, no spaces, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::blank("email"));
        }
        let valid = value.len() <= 254
            && !value.chars().any(char::is_whitespace)
            && match value.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(value.to_lowercase()))
        } else {
            Err(FieldError::invalid("email"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest bio accepted: keeps every event far below SNS's 256 KiB message and DynamoDB's
/// 400 KB item limits.
pub const MAX_BIO_CHARS: usize = 10_000;
/// Longest image URL accepted.
pub const MAX_IMAGE_CHARS: usize = 2_048;

/// Refuses a bio longer than [`MAX_BIO_CHARS`].
pub fn check_bio(bio: &str) -> Result<(), FieldError> {
    if bio.chars().count() > MAX_BIO_CHARS {
        Err(FieldError::too_long("bio"))
    } else {
        Ok(())
    }
}

/// Refuses an image URL longer than [`MAX_IMAGE_CHARS`].
pub fn check_image(image: &str) -> Result<(), FieldError> {
    if image.chars().count() > MAX_IMAGE_CHARS {
        Err(FieldError::too_long("image"))
    } else {
        Ok(())
    }
}

/// A username: 1 to 64 letters, digits, `_`, `-` or `.`, not starting with a dot (it is a URL
/// path segment, and `.` or `..` would be resolved away by clients).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::blank("username"));
        }
        let valid = value.chars().count() <= 64
            && !value.starts_with('.')
            && value
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::invalid("username"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A rejected input field, as RealWorld reports it: `{"errors": {"<field>": ["<message>"]}}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: &'static str,
}

impl FieldError {
    pub fn blank(field: &'static str) -> Self {
        Self {
            field,
            message: "can't be blank",
        }
    }
    pub fn invalid(field: &'static str) -> Self {
        Self {
            field,
            message: "is invalid",
        }
    }
    pub fn too_long(field: &'static str) -> Self {
        Self {
            field,
            message: "is too long",
        }
    }
    pub fn taken(field: &'static str) -> Self {
        Self {
            field,
            message: "has already been taken",
        }
    }
}

/// What the user aggregate is asked to do. Facts (ids, hashes) are looked up before.
#[derive(Clone, Debug, PartialEq)]
pub enum UserCommand {
    Register {
        user_id: String,
        email: Email,
        username: Username,
        password_hash: String,
    },
    Update(UserUpdate),
    Follow {
        followee_id: String,
    },
    Unfollow {
        followee_id: String,
    },
}

/// The fields a `PUT /user` may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserUpdate {
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub password_hash: Option<String>,
    pub bio: Option<String>,
    pub image: Option<String>,
}

/// What happened to a user. Stored as `eventType` = the variant name, `payload` = its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    #[serde(rename_all = "camelCase")]
    UserRegistered {
        user_id: String,
        email: String,
        username: String,
        /// Secret: removed before the event leaves the write side, hence the default.
        #[serde(default)]
        password_hash: String,
    },
    #[serde(rename_all = "camelCase")]
    UserEmailChanged {
        email: String,
        previous_email: String,
    },
    #[serde(rename_all = "camelCase")]
    UserRenamed {
        username: String,
        previous_username: String,
    },
    #[serde(rename_all = "camelCase")]
    UserPasswordChanged {
        /// Secret: removed before the event leaves the write side, hence the default.
        #[serde(default)]
        password_hash: String,
    },
    /// Carries the complete new bio and image; `null` is none. Version 2: version 1 spelled
    /// none as `""`, a value no reader could tell from a real one without knowing the
    /// convention ([`profile_v1_to_v2`] upcasts it). Both keys are required.
    #[serde(rename_all = "camelCase")]
    UserProfileUpdated {
        #[serde(deserialize_with = "required_nullable")]
        bio: Option<String>,
        #[serde(deserialize_with = "required_nullable")]
        image: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    UserFollowed { followee_id: String },
    #[serde(rename_all = "camelCase")]
    UserUnfollowed { followee_id: String },
}

impl UserEvent {
    /// `UserProfileUpdated` with the aggregate's spelling of none (`""`) turned into `None`.
    pub fn profile_updated(bio: &str, image: &str) -> Self {
        let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        UserEvent::UserProfileUpdated {
            bio: some(bio),
            image: some(image),
        }
    }
}

/// A field that must be present but may be `null` (serde lets a missing `Option` pass as
/// `None` otherwise).
fn required_nullable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}

/// `UserProfileUpdated` version 1 to 2: an empty `bio` or `image` (version 1's none) becomes
/// `null`; every other field is left as it is.
pub fn profile_v1_to_v2(mut payload: Value) -> Value {
    if let Value::Object(fields) = &mut payload {
        for name in ["bio", "image"] {
            if fields.get(name).and_then(Value::as_str) == Some("") {
                fields.insert(name.to_owned(), Value::Null);
            }
        }
    }
    payload
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        self.to_stored().0
    }

    fn event_version(&self) -> String {
        self.to_stored().1.to_string()
    }
}

impl EventSchema for UserEvent {
    const UPCASTERS: &'static [Upcaster] = &[Upcaster {
        event_type: "UserProfileUpdated",
        from: 1,
        step: profile_v1_to_v2,
    }];

    fn unique_changes(&self) -> Vec<UniqueChange> {
        match self {
            UserEvent::UserRegistered {
                email, username, ..
            } => vec![
                UniqueChange::Claim {
                    key: email_key(email),
                },
                UniqueChange::Claim {
                    key: username_key(username),
                },
            ],
            UserEvent::UserEmailChanged {
                email,
                previous_email,
            } => vec![
                UniqueChange::Release {
                    key: email_key(previous_email),
                },
                UniqueChange::Claim {
                    key: email_key(email),
                },
            ],
            UserEvent::UserRenamed {
                username,
                previous_username,
            } => vec![
                UniqueChange::Release {
                    key: username_key(previous_username),
                },
                UniqueChange::Claim {
                    key: username_key(username),
                },
            ],
            _ => Vec::new(),
        }
    }
}

/// Why the user aggregate refused a command. The HTTP status each becomes is noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// 409: the aggregate already holds a registration.
    #[error("user is already registered")]
    AlreadyRegistered,
    /// 404: no user with this id.
    #[error("user not found")]
    NotRegistered,
    /// 422: following oneself is meaningless.
    #[error("a user cannot follow themselves")]
    CannotFollowSelf,
    /// 422: an input field is invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// The state of one user, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Option<String>,
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub bio: String,
    pub image: String,
    pub following: BTreeSet<String>,
}

impl User {
    pub fn is_registered(&self) -> bool {
        self.id.is_some()
    }

    fn id(&self) -> Result<&str, UserError> {
        self.id.as_deref().ok_or(UserError::NotRegistered)
    }

    /// The events an update produces: one per field that really changes, none for a no-op.
    fn update_events(&self, update: UserUpdate) -> Vec<UserEvent> {
        let mut events = Vec::new();
        if let Some(email) = update.email {
            if email.as_str() != self.email {
                events.push(UserEvent::UserEmailChanged {
                    email: email.as_str().to_owned(),
                    previous_email: self.email.clone(),
                });
            }
        }
        if let Some(username) = update.username {
            if username.as_str() != self.username {
                events.push(UserEvent::UserRenamed {
                    username: username.as_str().to_owned(),
                    previous_username: self.username.clone(),
                });
            }
        }
        if let Some(password_hash) = update.password_hash {
            events.push(UserEvent::UserPasswordChanged { password_hash });
        }
        let bio = update.bio.unwrap_or_else(|| self.bio.clone());
        let image = update.image.unwrap_or_else(|| self.image.clone());
        if bio != self.bio || image != self.image {
            events.push(UserEvent::profile_updated(&bio, &image));
        }
        events
    }
}

/// Version 1: the serde form of the fields above.
impl Snapshotted for User {
    const SHAPE: u32 = 1;
}

impl Aggregate for User {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), UserError> {
        let events = match command {
            UserCommand::Register {
                user_id,
                email,
                username,
                password_hash,
            } => {
                if self.is_registered() {
                    return Err(UserError::AlreadyRegistered);
                }
                vec![UserEvent::UserRegistered {
                    user_id,
                    email: email.as_str().to_owned(),
                    username: username.as_str().to_owned(),
                    password_hash,
                }]
            }
            UserCommand::Update(update) => {
                self.id()?;
                if let Some(bio) = &update.bio {
                    check_bio(bio)?;
                }
                if let Some(image) = &update.image {
                    check_image(image)?;
                }
                self.update_events(update)
            }
            UserCommand::Follow { followee_id } => {
                if self.id()? == followee_id {
                    return Err(UserError::CannotFollowSelf);
                }
                if self.following.contains(&followee_id) {
                    Vec::new()
                } else {
                    vec![UserEvent::UserFollowed { followee_id }]
                }
            }
            UserCommand::Unfollow { followee_id } => {
                self.id()?;
                if self.following.contains(&followee_id) {
                    vec![UserEvent::UserUnfollowed { followee_id }]
                } else {
                    Vec::new()
                }
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                username,
                password_hash,
            } => {
                self.id = Some(user_id);
                self.email = email;
                self.username = username;
                self.password_hash = password_hash;
            }
            UserEvent::UserEmailChanged { email, .. } => self.email = email,
            UserEvent::UserRenamed { username, .. } => self.username = username,
            UserEvent::UserPasswordChanged { password_hash } => self.password_hash = password_hash,
            UserEvent::UserProfileUpdated { bio, image } => {
                self.bio = bio.unwrap_or_default();
                self.image = image.unwrap_or_default();
            }
            UserEvent::UserFollowed { followee_id } => {
                self.following.insert(followee_id);
            }
            UserEvent::UserUnfollowed { followee_id } => {
                self.following.remove(&followee_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SchemaError;
    use cqrs_es::test::TestFramework;

    type UserTest = TestFramework<User>;

    fn registered(id: &str) -> UserEvent {
        UserEvent::UserRegistered {
            user_id: id.into(),
            email: "jake@jake.jake".into(),
            username: "jake".into(),
            password_hash: "hash".into(),
        }
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).expect("valid email in test")
    }

    fn username(raw: &str) -> Username {
        Username::parse(raw).expect("valid username in test")
    }

    #[test]
    fn register_a_new_user() {
        UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::Register {
                user_id: "u1".into(),
                email: email("Jake@Jake.jake"),
                username: username("jake"),
                password_hash: "hash".into(),
            })
            .then_expect_events(vec![registered("u1")]);
    }

    #[test]
    fn register_twice_is_refused() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Register {
                user_id: "u1".into(),
                email: email("other@jake.jake"),
                username: username("other"),
                password_hash: "hash".into(),
            })
            .then_expect_error(UserError::AlreadyRegistered);
    }

    #[test]
    fn registration_claims_email_and_username() {
        assert_eq!(
            registered("u1").unique_changes(),
            vec![
                UniqueChange::Claim {
                    key: "email#jake@jake.jake".into()
                },
                UniqueChange::Claim {
                    key: "username#jake".into()
                },
            ]
        );
    }

    #[test]
    fn update_emits_one_event_per_changed_field() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Update(UserUpdate {
                email: Some(email("new@jake.jake")),
                username: Some(username("jacob")),
                password_hash: Some("hash2".into()),
                bio: Some("I work at statefarm".into()),
                image: None,
            }))
            .then_expect_events(vec![
                UserEvent::UserEmailChanged {
                    email: "new@jake.jake".into(),
                    previous_email: "jake@jake.jake".into(),
                },
                UserEvent::UserRenamed {
                    username: "jacob".into(),
                    previous_username: "jake".into(),
                },
                UserEvent::UserPasswordChanged {
                    password_hash: "hash2".into(),
                },
                UserEvent::profile_updated("I work at statefarm", ""),
            ]);
    }

    #[test]
    fn email_and_rename_move_their_claims() {
        let changed = UserEvent::UserEmailChanged {
            email: "new@x.io".into(),
            previous_email: "old@x.io".into(),
        };
        assert_eq!(
            changed.unique_changes(),
            vec![
                UniqueChange::Release {
                    key: "email#old@x.io".into()
                },
                UniqueChange::Claim {
                    key: "email#new@x.io".into()
                },
            ]
        );
        let renamed = UserEvent::UserRenamed {
            username: "b".into(),
            previous_username: "a".into(),
        };
        assert_eq!(
            renamed.unique_changes(),
            vec![
                UniqueChange::Release {
                    key: "username#a".into()
                },
                UniqueChange::Claim {
                    key: "username#b".into()
                },
            ]
        );
    }

    #[test]
    fn update_with_unchanged_values_emits_nothing() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Update(UserUpdate {
                email: Some(email("jake@jake.jake")),
                username: Some(username("jake")),
                bio: Some(String::new()),
                ..UserUpdate::default()
            }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn update_refuses_an_overlong_bio_or_image() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Update(UserUpdate {
                bio: Some("b".repeat(MAX_BIO_CHARS + 1)),
                ..UserUpdate::default()
            }))
            .then_expect_error(UserError::Field(FieldError::too_long("bio")));
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Update(UserUpdate {
                image: Some("i".repeat(MAX_IMAGE_CHARS + 1)),
                ..UserUpdate::default()
            }))
            .then_expect_error(UserError::Field(FieldError::too_long("image")));
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Update(UserUpdate {
                bio: Some("b".repeat(MAX_BIO_CHARS)),
                ..UserUpdate::default()
            }))
            .then_expect_events(vec![UserEvent::profile_updated(
                &"b".repeat(MAX_BIO_CHARS),
                "",
            )]);
    }

    #[test]
    fn update_of_unknown_user_is_refused() {
        UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::Update(UserUpdate {
                bio: Some("x".into()),
                ..UserUpdate::default()
            }))
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn follow_another_user() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Follow {
                followee_id: "u2".into(),
            })
            .then_expect_events(vec![UserEvent::UserFollowed {
                followee_id: "u2".into(),
            }]);
    }

    #[test]
    fn follow_twice_emits_nothing_the_second_time() {
        UserTest::with(())
            .given(vec![
                registered("u1"),
                UserEvent::UserFollowed {
                    followee_id: "u2".into(),
                },
            ])
            .when(UserCommand::Follow {
                followee_id: "u2".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn follow_self_is_refused() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Follow {
                followee_id: "u1".into(),
            })
            .then_expect_error(UserError::CannotFollowSelf);
    }

    #[test]
    fn follow_by_unregistered_user_is_refused() {
        UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::Follow {
                followee_id: "u2".into(),
            })
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn unfollow_a_followed_user() {
        UserTest::with(())
            .given(vec![
                registered("u1"),
                UserEvent::UserFollowed {
                    followee_id: "u2".into(),
                },
            ])
            .when(UserCommand::Unfollow {
                followee_id: "u2".into(),
            })
            .then_expect_events(vec![UserEvent::UserUnfollowed {
                followee_id: "u2".into(),
            }]);
    }

    #[test]
    fn unfollow_of_someone_not_followed_emits_nothing() {
        UserTest::with(())
            .given(vec![registered("u1")])
            .when(UserCommand::Unfollow {
                followee_id: "u2".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn unfollow_by_unregistered_user_is_refused() {
        UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::Unfollow {
                followee_id: "u2".into(),
            })
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn emails_are_validated_and_lower_cased() {
        assert_eq!(email(" A@B.io ").as_str(), "a@b.io");
        assert_eq!(Email::parse(""), Err(FieldError::blank("email")));
        for bad in [
            "no-at", "@b.io", "a@", "a@b", "a b@c.io", "a@@b.io", "a@b.io.",
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(FieldError::invalid("email")),
                "{bad}"
            );
        }
    }

    #[test]
    fn usernames_are_validated() {
        assert_eq!(username("jake_2.x-y").as_str(), "jake_2.x-y");
        assert_eq!(Username::parse("  "), Err(FieldError::blank("username")));
        for bad in ["a b", "a/b", "a?b", ".", "..", ".hidden", &"x".repeat(65)] {
            assert_eq!(
                Username::parse(bad),
                Err(FieldError::invalid("username")),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        let events = vec![
            registered("u1"),
            UserEvent::UserEmailChanged {
                email: "a@b.io".into(),
                previous_email: "c@d.io".into(),
            },
            UserEvent::UserRenamed {
                username: "a".into(),
                previous_username: "b".into(),
            },
            UserEvent::UserPasswordChanged {
                password_hash: "h".into(),
            },
            UserEvent::profile_updated("b", "i"),
            UserEvent::UserFollowed {
                followee_id: "u2".into(),
            },
            UserEvent::UserUnfollowed {
                followee_id: "u2".into(),
            },
        ];
        for event in events {
            let (event_type, version, payload) = event.to_stored();
            assert_eq!(event_type, event.event_type());
            assert!(payload.is_object(), "{event_type} payload is a map");
            let back = UserEvent::from_stored(&event_type, version, &payload).expect("round trip");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn stored_payload_is_readable_camel_case() {
        let (event_type, version, payload) = registered("u1").to_stored();
        assert_eq!(event_type, "UserRegistered");
        assert_eq!(version, 1);
        assert_eq!(
            payload,
            serde_json::json!({"userId": "u1", "email": "jake@jake.jake", "username": "jake", "passwordHash": "hash"})
        );
    }

    #[test]
    fn a_version_1_profile_update_reads_as_version_2() {
        let v1 = serde_json::json!({"bio": "", "image": "https://img/a.png"});
        let event = UserEvent::from_stored("UserProfileUpdated", 1, &v1).expect("upcast");
        assert_eq!(
            event,
            UserEvent::UserProfileUpdated {
                bio: None,
                image: Some("https://img/a.png".into()),
            }
        );
        let (_, version, payload) = event.to_stored();
        assert_eq!(version, 2);
        assert_eq!(
            payload,
            serde_json::json!({"bio": null, "image": "https://img/a.png"})
        );
        // Version 2 needs both keys; there is no version 3 yet.
        let missing = serde_json::json!({"bio": "x"});
        assert!(UserEvent::from_stored("UserProfileUpdated", 2, &missing).is_err());
        assert!(matches!(
            UserEvent::from_stored("UserProfileUpdated", 3, &payload),
            Err(SchemaError::Unknown { version: 3, .. })
        ));
        assert_eq!(UserEvent::current_version("UserFollowed"), 1);
    }

    #[test]
    fn unknown_types_and_versions_are_named() {
        let payload = serde_json::json!({});
        assert!(matches!(
            UserEvent::from_stored("UserVanished", 1, &payload),
            Err(crate::SchemaError::Unknown { .. })
        ));
        assert!(matches!(
            UserEvent::from_stored("UserFollowed", 9, &payload),
            Err(crate::SchemaError::Unknown { .. })
        ));
        assert!(matches!(
            UserEvent::from_stored("UserFollowed", 1, &payload),
            Err(crate::SchemaError::Payload { .. })
        ));
    }
}
