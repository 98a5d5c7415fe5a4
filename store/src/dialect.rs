//! The SQL spellings that differ between PostgreSQL and SQLite. Everything else is written once.

/// The backend's SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A timestamp column read as whole seconds since the epoch, NULL when it holds no date
    /// (PostgreSQL: `±infinity`).
    /// SQLite keeps times as text and its date functions read many spellings (a bare number is
    /// a Julian day), so only the RFC 3339 form the store writes is read; anything else is
    /// NULL, which the reader reports as a bad row rather than a wrong date.
    pub(crate) fn epoch(self, col: &str) -> String {
        match self {
            // `infinity` is a valid timestamptz with no epoch a bigint can hold.
            Self::Postgres => {
                format!("CASE WHEN isfinite({col}) THEN EXTRACT(EPOCH FROM {col})::bigint END")
            }
            Self::Sqlite => format!(
                "CASE WHEN {col} GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9]*' \
                 THEN unixepoch({col}) END"
            ),
        }
    }

    /// An integer column, NULL when it holds something else: SQLite stores any value in any
    /// column (text that does not look like a number stays text), and the reader reports that
    /// as a bad row instead of failing the whole read on a type mismatch.
    pub(crate) fn int(self, col: &str) -> String {
        match self {
            Self::Postgres => col.to_owned(),
            Self::Sqlite => format!("CASE WHEN typeof({col}) = 'integer' THEN {col} END"),
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

    /// The database's clock as whole milliseconds since the epoch: the cluster tables keep
    /// times on this one clock, so ages and lease expiries do not depend on the masters'.
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Self::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
            // julianday('now') has millisecond precision; 2440587.5 is the epoch's Julian day.
            Self::Sqlite => "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)",
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
