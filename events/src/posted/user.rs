//! Which command a posted user event stands for: only the user may post to their own stream.

use super::{check_new_id, Fact, Facts, Fields, Postable, Refusal};
use crate::user::{Email, User, UserCommand, UserError, UserEvent, UserUpdate, Username};

impl Postable for User {
    fn authorize(aggregate_id: &str, event: &UserEvent, actor: &str) -> Result<(), Refusal> {
        if aggregate_id != actor {
            return Err(Refusal::Forbidden);
        }
        match event {
            UserEvent::UserRegistered {
                user_id,
                password_hash,
                ..
            } => {
                if user_id != aggregate_id {
                    return Err(Refusal::invalid("data.userId", "must equal aggregateId"));
                }
                // A hash chosen by the caller would be a password nobody chose through the
                // API's rules; a user registered by an event has none (cannot log in).
                if !password_hash.is_empty() {
                    return Err(Refusal::invalid(
                        "data.passwordHash",
                        "cannot be set by a posted event; register through POST /api/users",
                    ));
                }
                check_new_id(aggregate_id)
            }
            UserEvent::UserPasswordChanged { .. } => Err(Refusal::invalid(
                "type",
                "UserPasswordChanged carries a secret and cannot be posted; change the password through PUT /api/user",
            )),
            _ => Ok(()),
        }
    }

    fn needs(event: &UserEvent, _actor: &str) -> Vec<Fact> {
        match event {
            UserEvent::UserFollowed { followee_id } => {
                vec![Fact::UserRegistered(followee_id.clone())]
            }
            _ => Vec::new(),
        }
    }

    fn command_for(
        &self,
        event: &UserEvent,
        _actor: &str,
        facts: &Facts,
    ) -> Result<UserCommand, Refusal> {
        let update = |update: UserUpdate| Ok(UserCommand::Update(update));
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                username,
                password_hash,
            } => {
                let mut fields = Fields::default();
                let email = fields.check(Email::parse(email));
                let username = fields.check(Username::parse(username));
                let (email, username) = fields.done(email.zip(username))?;
                Ok(UserCommand::Register {
                    user_id: user_id.clone(),
                    email,
                    username,
                    password_hash: password_hash.clone(),
                })
            }
            UserEvent::UserEmailChanged { email, .. } => update(UserUpdate {
                email: Some(Email::parse(email).map_err(Refusal::field)?),
                ..UserUpdate::default()
            }),
            UserEvent::UserRenamed { username, .. } => update(UserUpdate {
                username: Some(Username::parse(username).map_err(Refusal::field)?),
                ..UserUpdate::default()
            }),
            UserEvent::UserPasswordChanged { .. } => Err(Refusal::invalid(
                "type",
                "UserPasswordChanged cannot be posted",
            )),
            UserEvent::UserProfileUpdated { bio, image } => update(UserUpdate {
                bio: Some(bio.clone().unwrap_or_default()),
                image: Some(image.clone().unwrap_or_default()),
                ..UserUpdate::default()
            }),
            UserEvent::UserFollowed { followee_id } => {
                if !facts.holds(&Fact::UserRegistered(followee_id.clone())) {
                    return Err(Refusal::invalid(
                        "data.followeeId",
                        "names no registered user",
                    ));
                }
                Ok(UserCommand::Follow {
                    followee_id: followee_id.clone(),
                })
            }
            UserEvent::UserUnfollowed { followee_id } => Ok(UserCommand::Unfollow {
                followee_id: followee_id.clone(),
            }),
        }
    }

    fn refusal(error: UserError) -> Refusal {
        match error {
            UserError::AlreadyRegistered => Refusal::Exists(error.to_string()),
            UserError::NotRegistered => Refusal::invalid("aggregateId", "names no registered user"),
            UserError::CannotFollowSelf => {
                Refusal::invalid("data.followeeId", "cannot be the user themselves")
            }
            UserError::Field(field) => Refusal::field(field),
        }
    }
}
