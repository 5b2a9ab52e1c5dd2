//! Prices set in the config: `[prices."MODEL"]` for every provider, and per provider
//! `[providers.NAME.prices."MODEL"]` with a `price_factor`.
//!
//! An override replaces the table's entry for its model as a whole, rather than merging
//! into it, so what is charged is exactly what the config says.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cost::table::{check_rate, check_rates, ModelPrice, Rates, Tier};
use crate::error::FieldError;

/// One model's price in the config, in USD per million tokens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Cache reads; default the input rate.
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Cache writes (Anthropic's cache creation); default the input rate.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    /// Reasoning output; default the output rate.
    #[serde(default)]
    pub reasoning_per_mtok: Option<f64>,
    /// Rates once the prompt exceeds `above_tokens`.
    #[serde(default)]
    pub tiers: Vec<TierOverride>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverride {
    pub above_tokens: u64,
    #[serde(default)]
    pub input_per_mtok: Option<f64>,
    #[serde(default)]
    pub output_per_mtok: Option<f64>,
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    #[serde(default)]
    pub reasoning_per_mtok: Option<f64>,
}

/// A provider's pricing settings, read from `[providers.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPricing {
    /// Prices of this provider's models; the factor does not apply to them.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceOverride>,
    /// Multiplies the table's and `[prices]` prices for this provider: 0.8 for a 20%
    /// discount, 1.1 for a 10% markup.
    #[serde(default = "one")]
    pub price_factor: f64,
}

impl Default for ProviderPricing {
    fn default() -> Self {
        Self {
            prices: BTreeMap::new(),
            price_factor: 1.0,
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Every price override of a config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `[prices."MODEL"]`.
    pub global: BTreeMap<String, PriceOverride>,
    /// `[providers.NAME]`'s `prices` and `price_factor`, by provider name.
    pub providers: BTreeMap<String, ProviderPricing>,
}

impl PriceOverride {
    /// The override as a table entry; errors name the field below the model.
    pub fn to_price(&self) -> Result<ModelPrice, FieldError> {
        let rates = Rates {
            input: self.input_per_mtok,
            output: self.output_per_mtok,
            cache_read: self.cache_read_per_mtok,
            cache_write: self.cache_write_per_mtok,
            reasoning: self.reasoning_per_mtok,
        };
        check_rates(&rates).map_err(per_mtok)?;
        let mut tiers = Vec::with_capacity(self.tiers.len());
        for (i, t) in self.tiers.iter().enumerate() {
            let tier = Tier {
                above: t.above_tokens,
                input: t.input_per_mtok,
                output: t.output_per_mtok,
                cache_read: t.cache_read_per_mtok,
                cache_write: t.cache_write_per_mtok,
                reasoning: t.reasoning_per_mtok,
            };
            for (name, v) in [
                ("input", tier.input),
                ("output", tier.output),
                ("cache_read", tier.cache_read),
                ("cache_write", tier.cache_write),
                ("reasoning", tier.reasoning),
            ] {
                check_rate(name, v).map_err(|e| per_mtok(e).under(&format!("tiers[{i}]")))?;
            }
            if tiers.last().is_some_and(|l: &Tier| tier.above <= l.above) {
                return Err(FieldError::new(
                    format!("tiers[{i}].above_tokens"),
                    "tiers must be in increasing order of above_tokens",
                ));
            }
            tiers.push(tier);
        }
        Ok(ModelPrice {
            tiers,
            ..ModelPrice::flat(rates)
        })
    }
}

/// The table's field names are the config's without `_per_mtok`.
fn per_mtok(e: FieldError) -> FieldError {
    FieldError {
        path: format!("{}_per_mtok", e.path),
        ..e
    }
}

impl Overrides {
    /// Checks every override; errors name the config path (`prices."m".input_per_mtok`,
    /// `providers.up.price_factor`).
    pub fn check(&self) -> Result<(), FieldError> {
        for (model, o) in &self.global {
            o.to_price()
                .map_err(|e| e.under(&format!("prices.{}", quoted(model))))?;
        }
        for (name, p) in &self.providers {
            let at = format!("providers.{name}");
            if !p.price_factor.is_finite() || p.price_factor < 0.0 {
                return Err(FieldError::new(
                    format!("{at}.price_factor"),
                    format!("must be a number >= 0, not {}", p.price_factor),
                ));
            }
            for (model, o) in &p.prices {
                o.to_price()
                    .map_err(|e| e.under(&format!("{at}.prices.{}", quoted(model))))?;
            }
        }
        Ok(())
    }
}

/// A model name as a TOML key: quoted, since names hold dots (`gpt-4.1`).
fn quoted(model: &str) -> String {
    format!("\"{}\"", model.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_config_path() {
        let mut o = Overrides::default();
        o.global.insert(
            "gpt-4.1".into(),
            PriceOverride {
                input_per_mtok: -1.0,
                ..Default::default()
            },
        );
        assert_eq!(
            o.check().unwrap_err().to_string(),
            "prices.\"gpt-4.1\".input_per_mtok: -1 is not a price (USD per million tokens, >= 0)"
        );
        let mut o = Overrides::default();
        o.providers.insert(
            "up".into(),
            ProviderPricing {
                price_factor: f64::NAN,
                ..Default::default()
            },
        );
        assert!(o
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("providers.up.price_factor: must be a number >= 0"));
        let mut p = ProviderPricing::default();
        p.prices.insert(
            "m".into(),
            PriceOverride {
                input_per_mtok: 1.0,
                output_per_mtok: 1.0,
                tiers: vec![
                    TierOverride {
                        above_tokens: 10,
                        ..Default::default()
                    },
                    TierOverride {
                        above_tokens: 10,
                        cache_read_per_mtok: Some(f64::INFINITY),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        );
        let mut o = Overrides::default();
        o.providers.insert("up".into(), p);
        assert_eq!(
            o.check().unwrap_err().to_string(),
            "providers.up.prices.\"m\".tiers[1].cache_read_per_mtok: inf is not a price (USD per million tokens, >= 0)"
        );
    }
}
