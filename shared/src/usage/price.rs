//! Prices per catalog kind and model (exact name or `*` pattern), in integer micro-units of
//! currency per million tokens, read from `prices.json` (each row with its source and date), and
//! the cost of a `Usage` in micro-units (no floating point).

use super::Usage;

/// Prices of one model, in micro-units per million tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// `None`: cache reads cost the input price.
    pub cache_read: Option<u64>,
    /// `None`: cache writes cost the input price.
    pub cache_write: Option<u64>,
    /// `None`: 1-hour cache writes cost the `cache_write` price.
    pub cache_write_1h: Option<u64>,
    /// `None`: reasoning tokens cost the output price.
    pub reasoning: Option<u64>,
    /// Prices when a request's prompt is larger than this many tokens (long-context tiers).
    pub above: Option<(u64, Box<Price>)>,
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    pub kind: String,
    /// An exact model name, or a pattern with `*` (matches any run of characters).
    pub model: String,
    pub pattern: bool,
    pub price: Price,
    pub source: String,
    pub date: String,
}

/// Prices, looked up by catalog kind and model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceTable {
    pub currency: String,
    pub rows: Vec<PriceRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("price table: {0}")]
    Invalid(String),
}

impl PriceTable {
    /// The table kept in the repository (`prices.json`).
    pub fn builtin() -> PriceTable {
        PriceTable::default()
    }

    /// A table from its JSON form (the form of `prices.json`, also what the API takes).
    pub fn parse(json: &str) -> Result<PriceTable, PriceError> {
        let _ = json;
        Err(PriceError::Invalid("not implemented".into()))
    }

    /// The row for `kind` and `model`: an exact name first, then the first pattern that matches.
    pub fn find(&self, kind: &str, model: &str) -> Option<&PriceRow> {
        let _ = (kind, model);
        None
    }
}

/// What `usage` costs at `price`, in micro-units, rounded to the nearest unit.
pub fn cost(usage: &Usage, price: &Price) -> u64 {
    let _ = (usage, price);
    0
}

/// A decimal amount (`"2.50"`, `"0.075"`, at most six decimals) in micro-units.
pub fn parse_amount(s: &str) -> Result<u64, PriceError> {
    let _ = s;
    Err(PriceError::Invalid("not implemented".into()))
}
