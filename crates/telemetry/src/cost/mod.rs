//! What an exchange cost: a price table shipped in the binary, the config's overrides, and
//! the pricing of a record's usage (docs/cost.md).
//!
//! - [`table`]: our table format, and the shipped table parsed once;
//! - [`normalise`]: which entry a model name means (snapshots, `provider/model`);
//! - [`price`]: usage times rates, each token once;
//! - [`overrides`]: `[prices]` and the per-provider prices and factor;
//! - [`pricer`]: [`Pricer`], all of the above behind one call per record.

pub mod normalise;
pub mod overrides;
pub mod price;
pub mod pricer;
pub mod table;

pub use overrides::{Overrides, PriceOverride, ProviderPricing, TierOverride};
pub use pricer::{Priced, Pricer};
pub use table::{ModelPrice, PriceTable, Rates, Tier};

use crate::record::Cost;

/// A cost as a header or log value: US dollars, in plain decimal notation with every digit
/// the float holds (`0.0000045`, never `4.5e-6`).
pub fn usd_text(cost: &Cost) -> String {
    cost.total_usd.to_string()
}
