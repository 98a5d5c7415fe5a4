//! The SQL spellings that differ between PostgreSQL and SQLite. Everything else is written once.

/// The backend's SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A timestamp column read as whole seconds since the epoch.
    pub(crate) fn epoch(self, col: &str) -> String {
        match self {
            Self::Postgres => format!("EXTRACT(EPOCH FROM {col})::bigint"),
            Self::Sqlite => format!("unixepoch({col})"),
        }
    }

    /// Placeholder `$n` for an RFC 3339 timestamp given as text.
    pub(crate) fn ts_param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}::timestamptz"),
            Self::Sqlite => format!("${n}"),
        }
    }

    /// Placeholder `$n` for an IP address given as text.
    pub(crate) fn inet_param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}::inet"),
            Self::Sqlite => format!("${n}"),
        }
    }

    /// An address column read as text without a prefix length.
    pub(crate) fn addr(self, col: &str) -> String {
        match self {
            Self::Postgres => format!("host({col})"),
            Self::Sqlite => col.to_owned(),
        }
    }

    /// A string aggregate of `expr` separated by `sep` (order unspecified).
    pub(crate) fn agg(self, expr: &str, sep: &str) -> String {
        match self {
            Self::Postgres => format!("string_agg({expr}, '{sep}')"),
            Self::Sqlite => format!("group_concat({expr}, '{sep}')"),
        }
    }

    /// `expr` cast to text.
    pub(crate) fn text(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("({expr})::text"),
            Self::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// Starts a read-only transaction that sees one consistent snapshot for its whole life.
    /// SQLite in WAL mode gives that to any read transaction; PostgreSQL needs REPEATABLE READ.
    pub(crate) fn snapshot_statement(self) -> Option<&'static str> {
        match self {
            Self::Postgres => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            Self::Sqlite => None,
        }
    }
}
