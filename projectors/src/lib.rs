//! The fan-out (stream to topic), the projector runtime (queue batch to read model, exactly-once effects per aggregate sequence) and the projectors.

pub mod articles;
pub mod batch;
pub mod bulk;
pub mod failures;
pub mod fanout;
pub mod feed;
pub mod heads;
pub mod metrics;
pub mod ops;
pub mod runtime;
pub mod search;
pub mod users;
pub mod versions;

pub use self::search::SearchProjector;
pub use articles::ArticlesProjector;
pub use fanout::FanOut;
pub use feed::FeedProjector;
pub use runtime::{ProjectionError, Projector, ProjectorRuntime};
pub use users::UsersProjector;
pub use versions::VersionedProjector;
