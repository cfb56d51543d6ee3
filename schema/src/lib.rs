//! The names the parts of Conduit-ES agree on, in one place: the shape of every DynamoDB table
//! (each table's logical name, key, indexes and stream, and the attribute names its items
//! use) and the API's own HTTP headers.
//!
//! Everything else derives from it: `common`'s table names, the item shapes in
//! `events::views`, the query side's cursors, the deployment template (`infra`) and local
//! provisioning (`local-aws`). Plain `const` data with no dependencies, so that every crate can
//! use it without compiling anything it does not run. Physical names are `{prefix}{name}`.

/// The DynamoDB scalar type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// String (`S`).
    S,
    /// Number (`N`).
    N,
    /// Binary (`B`).
    B,
}

impl AttrType {
    /// The CloudFormation / DynamoDB spelling: `S`, `N` or `B`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
            AttrType::B => "B",
        }
    }
}

/// One key attribute: its name and scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttr {
    /// Attribute name, e.g. `pk`.
    pub name: &'static str,
    /// Scalar type of the attribute.
    pub ty: AttrType,
}

/// A primary key or index key: a hash (partition) key and an optional range (sort) key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySchema {
    /// The partition key.
    pub hash: KeyAttr,
    /// The sort key, if any.
    pub range: Option<KeyAttr>,
}

/// What a global secondary index projects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionType {
    /// Every attribute (`ALL`).
    All,
    /// Only the table and index keys (`KEYS_ONLY`).
    KeysOnly,
}

impl ProjectionType {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProjectionType::All => "ALL",
            ProjectionType::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A global secondary index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GsiDef {
    /// Index name (not prefixed), e.g. `byUsername`.
    pub name: &'static str,
    /// The index key.
    pub key: KeySchema,
    /// What the index projects.
    pub projection: ProjectionType,
}

/// What a DynamoDB stream record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamViewType {
    /// The item as it is after the change (`NEW_IMAGE`).
    NewImage,
    /// The item before and after the change (`NEW_AND_OLD_IMAGES`).
    NewAndOldImages,
}

impl StreamViewType {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// How a table is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingMode {
    /// On-demand (`PAY_PER_REQUEST`).
    PayPerRequest,
}

impl BillingMode {
    /// The CloudFormation / DynamoDB spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
        }
    }
}

/// A DynamoDB table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// Logical name (the physical name is `{prefix}{name}`), e.g. `events`.
    pub name: &'static str,
    /// The primary key.
    pub key: KeySchema,
    /// Global secondary indexes.
    pub gsis: &'static [GsiDef],
    /// The stream, if the table has one.
    pub stream: Option<StreamViewType>,
    /// Billing mode.
    pub billing: BillingMode,
}

impl TableDef {
    /// Every attribute used in a key of the table or one of its indexes, each once, in order
    /// of first appearance (what `AttributeDefinitions` must list).
    pub fn key_attributes(&self) -> Vec<KeyAttr> {
        let mut out: Vec<KeyAttr> = Vec::new();
        let keys = std::iter::once(&self.key).chain(self.gsis.iter().map(|g| &g.key));
        for key in keys {
            for attr in std::iter::once(key.hash).chain(key.range) {
                if !out.iter().any(|a| a.name == attr.name) {
                    out.push(attr);
                }
            }
        }
        out
    }
}

const fn s(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        ty: AttrType::S,
    }
}

const fn n(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        ty: AttrType::N,
    }
}

/// A table without indexes or stream, billed on demand.
const fn plain(name: &'static str, hash: KeyAttr, range: Option<KeyAttr>) -> TableDef {
    TableDef {
        name,
        key: KeySchema { hash, range },
        gsis: &[],
        stream: None,
        billing: BillingMode::PayPerRequest,
    }
}

/// A global secondary index that projects `projection`.
const fn gsi(
    name: &'static str,
    hash: KeyAttr,
    range: Option<KeyAttr>,
    projection: ProjectionType,
) -> GsiDef {
    GsiDef {
        name,
        key: KeySchema { hash, range },
        projection,
    }
}

/// The event log: one item per event, `pk` = `<AggregateType>#<id>`, `sk` = sequence; stream
/// `NEW_IMAGE`.
pub mod events {
    use super::*;

    pub const PK: &str = "pk";
    pub const SK: &str = "sk";

    pub const TABLE: TableDef = TableDef {
        stream: Some(StreamViewType::NewImage),
        ..plain("events", s(PK), Some(n(SK)))
    };
}

/// Uniqueness claims (email, username, slug, POSTed event ids).
pub mod uniques {
    use super::*;

    pub const PK: &str = "pk";

    pub const TABLE: TableDef = plain("uniques", s(PK), None);
}

/// Aggregate snapshots: a cache of the write side, one item per stream (the latest), written in
/// the transaction of the events it covers. Never the source of truth: deleting every item
/// changes nothing but the cost of the next loads.
pub mod snapshots {
    use super::*;

    /// The stream key, `<AggregateType>#<id>` (as the events' `pk`).
    pub const PK: &str = "pk";
    /// The sequence of the last event the state covers.
    pub const SEQUENCE: &str = "sequence";
    /// The version of the state's shape (the aggregate's `SHAPE`).
    pub const SHAPE: &str = "shape";
    /// The aggregate's state, JSON.
    pub const STATE: &str = "state";
    /// When it was written, ISO 8601.
    pub const TAKEN_AT: &str = "takenAt";

    pub const TABLE: TableDef = plain("snapshots", s(PK), None);
}

/// The users read model: one item per registered user, with the `byUsername` index.
pub mod users {
    use super::*;

    pub const USER_ID: &str = "userId";
    pub const EMAIL: &str = "email";
    pub const USERNAME: &str = "username";
    pub const BIO: &str = "bio";
    pub const IMAGE: &str = "image";
    /// The sequence of the last event of the user's stream reflected in the item.
    pub const LAST_SEQ: &str = "lastSeq";
    /// The GSI that finds a user by username.
    pub const BY_USERNAME: &str = "byUsername";

    pub const TABLE: TableDef = TableDef {
        gsis: &[gsi(BY_USERNAME, s(USERNAME), None, ProjectionType::All)],
        ..plain("users", s(USER_ID), None)
    };
}

/// The follows read model: one item per (follower, followee), with the reverse `byFollowee`
/// index.
pub mod follows {
    use super::*;

    pub const FOLLOWER_ID: &str = "followerId";
    pub const FOLLOWEE_ID: &str = "followeeId";
    /// The sequence of the follower's event that created the item.
    pub const SEQ: &str = "seq";
    pub const BY_FOLLOWEE: &str = "byFollowee";

    pub const TABLE: TableDef = TableDef {
        gsis: &[gsi(
            BY_FOLLOWEE,
            s(FOLLOWEE_ID),
            Some(s(FOLLOWER_ID)),
            ProjectionType::All,
        )],
        ..plain("follows", s(FOLLOWER_ID), Some(s(FOLLOWEE_ID)))
    };
}

/// The articles read model: one item per article (favorite counts; tombstones), with `bySlug`.
pub mod articles {
    use super::*;

    pub const ARTICLE_ID: &str = "articleId";
    pub const SLUG: &str = "slug";
    pub const TITLE: &str = "title";
    pub const DESCRIPTION: &str = "description";
    /// A list of strings, sorted.
    pub const TAG_LIST: &str = "tagList";
    pub const AUTHOR_ID: &str = "authorId";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// How many users favorite the article (a number, never negative).
    pub const FAVORITES_COUNT: &str = "favoritesCount";
    /// The sequence of the last `Article` event reflected in the item.
    pub const LAST_SEQ: &str = "lastSeq";
    /// Present (true) once the article was deleted: the item is a tombstone.
    pub const DELETED: &str = "deleted";
    /// The GSI that finds an article by slug (tombstones and favorite-only items have no slug).
    pub const BY_SLUG: &str = "bySlug";

    pub const TABLE: TableDef = TableDef {
        gsis: &[gsi(BY_SLUG, s(SLUG), None, ProjectionType::All)],
        ..plain("articles", s(ARTICLE_ID), None)
    };
}

/// Article bodies, one item per article under its id: apart from `articles` because DynamoDB
/// charges a read for the whole item, and list pages, which never show a body, read 20
/// `articles` items at a time.
pub mod article_bodies {
    use super::*;

    pub const ARTICLE_ID: &str = "articleId";
    pub const BODY: &str = "body";
    /// The sequence of the last `Article` event reflected in the item.
    pub const LAST_SEQ: &str = "lastSeq";

    pub const TABLE: TableDef = plain("article-bodies", s(ARTICLE_ID), None);
}

/// The comments read model: an article's live comments under its id, ordered by comment id.
pub mod comments {
    use super::*;

    pub const ARTICLE_ID: &str = "articleId";
    /// A number: 1, 2, 3... per article.
    pub const COMMENT_ID: &str = "commentId";
    pub const AUTHOR_ID: &str = "authorId";
    pub const BODY: &str = "body";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// The sequence of the comment thread's event that wrote the item.
    pub const SEQ: &str = "seq";

    pub const TABLE: TableDef = plain("comments", s(ARTICLE_ID), Some(n(COMMENT_ID)));
}

/// The favorites read model: one item per (article, user) while the user favorites the
/// article, with the per-user `byUser` index.
pub mod favorites {
    use super::*;

    pub const ARTICLE_ID: &str = "articleId";
    pub const USER_ID: &str = "userId";
    /// The sequence of the favorite's event that wrote the item.
    pub const SEQ: &str = "seq";
    pub const BY_USER: &str = "byUser";

    pub const TABLE: TableDef = TableDef {
        gsis: &[gsi(
            BY_USER,
            s(USER_ID),
            Some(s(ARTICLE_ID)),
            ProjectionType::KeysOnly,
        )],
        ..plain("favorites", s(ARTICLE_ID), Some(s(USER_ID)))
    };
}

/// Feeds: one small entry per (reader, followed author's article), newest last by `feedKey`,
/// so a backwards `Query` pages a feed newest first.
pub mod feeds {
    use super::*;

    /// The reader whose feed holds the entry.
    pub const USER_ID: &str = "userId";
    /// `<createdAt as 13-digit epoch ms>#<articleId>`: sorts by creation, ties by id.
    pub const FEED_KEY: &str = "feedKey";
    pub const AUTHOR_ID: &str = "authorId";
    pub const ARTICLE_ID: &str = "articleId";

    pub const TABLE: TableDef = plain("feeds", s(USER_ID), Some(s(FEED_KEY)));
}

/// The feed projector's own copy of each author's live articles (what a feed entry shows):
/// the attribute names of [`articles`], no body, no counts.
pub mod feed_articles {
    use super::*;

    pub const AUTHOR_ID: &str = "authorId";
    pub const ARTICLE_ID: &str = "articleId";
    pub const SLUG: &str = articles::SLUG;
    pub const TITLE: &str = articles::TITLE;
    pub const DESCRIPTION: &str = articles::DESCRIPTION;
    pub const TAG_LIST: &str = articles::TAG_LIST;
    pub const CREATED_AT: &str = articles::CREATED_AT;
    pub const UPDATED_AT: &str = articles::UPDATED_AT;
    /// The sequence of the last `Article` event reflected in the item.
    pub const LAST_SEQ: &str = "lastSeq";
    /// Present while the article's deletion is being fanned out: backfills skip it, readers
    /// ignore it, and the item goes when the deletion is done.
    pub const DELETED: &str = "deleted";

    pub const TABLE: TableDef = plain("feed-articles", s(AUTHOR_ID), Some(s(ARTICLE_ID)));
}

/// The feed projector's own follower lists, keyed by the followed author.
pub mod feed_followers {
    use super::*;

    pub const AUTHOR_ID: &str = "authorId";
    pub const FOLLOWER_ID: &str = "followerId";
    /// The sequence of the follower's `UserFollowed` event.
    pub const SEQ: &str = "seq";

    pub const TABLE: TableDef = plain("feed-followers", s(AUTHOR_ID), Some(s(FOLLOWER_ID)));
}

/// Checkpoints: the last sequence each projector applied per aggregate stream, in the
/// checkpoints table of the projection's version (where the registry items live too).
pub mod checkpoints {
    use super::*;

    /// The key attribute: `<projector>#<stream>` for a stream's checkpoint,
    /// `projection#<name>` for a registry item.
    pub const PK: &str = "pk";
    /// The last sequence of the stream the projector has applied.
    pub const LAST_SEQ: &str = "lastSeq";

    pub const TABLE: TableDef = plain("checkpoints", s(PK), None);

    /// The attributes of a projection's registry item.
    pub mod registry {
        pub const ACTIVE: &str = "active";
        pub const BUILDING: &str = "building";
        pub const FROZEN: &str = "frozen";
        pub const VERSIONS: &str = "versions";
    }
}

/// Every table.
pub const TABLES: &[TableDef] = &[
    events::TABLE,
    uniques::TABLE,
    snapshots::TABLE,
    users::TABLE,
    follows::TABLE,
    articles::TABLE,
    article_bodies::TABLE,
    comments::TABLE,
    favorites::TABLE,
    feeds::TABLE,
    feed_articles::TABLE,
    feed_followers::TABLE,
    checkpoints::TABLE,
];

/// The API's own HTTP headers: the services read and write them; the template's and the local
/// gateway's CORS configurations let browsers send and see them.
pub mod headers {
    /// The response header that names the position a write appended.
    pub const POSITION_HEADER: &str = "conduit-position";
    /// The request header with the position(s) a read must reflect (comma-separated).
    pub const MIN_POSITION_HEADER: &str = "conduit-min-position";
    /// The response header that says whether a read reflects the positions it was asked for
    /// (`current`, or `stale`: the wait bound passed first), and whether the read models had
    /// applied a write when it answered (`current`, `behind`, or `unchecked`: nothing waited).
    pub const CONSISTENCY_HEADER: &str = "conduit-consistency";
    /// The response header of a write answered `behind`: the projections still behind, comma-separated.
    pub const BEHIND_HEADER: &str = "conduit-behind";
}

/// The CloudWatch metrics the projectors emit (as Embedded Metric Format log lines) and the
/// template alarms on.
pub mod metrics {
    pub const NAMESPACE: &str = "ConduitES";
    /// The dimension: the projection's name (`users`, `articles`, `feed`, `search`).
    pub const PROJECTION: &str = "Projection";
    /// Per batch: how long the oldest event applied waited since it was recorded.
    pub const LAG_SECONDS: &str = "ProjectionLagSeconds";
    /// Per batch: the messages handed back.
    pub const FAILURES: &str = "ProjectionFailures";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_attributes_are_deduplicated() {
        let names: Vec<_> = follows::TABLE
            .key_attributes()
            .iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["followerId", "followeeId"]);
        let names: Vec<_> = users::TABLE
            .key_attributes()
            .iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["userId", "username"]);
    }
}
