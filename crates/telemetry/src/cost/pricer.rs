//! [`Pricer`]: the table and the config's overrides, asked once per record.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::cost::normalise;
use crate::cost::overrides::{Overrides, PriceOverride};
use crate::cost::price;
use crate::cost::table::{ModelPrice, PriceTable};
use crate::error::FieldError;
use crate::record::{Cost, GenerationRecord};

/// Prices records. Built once at start-up and shared (`Arc<Pricer>`); pricing a record
/// whose answer names a listed model is one hash lookup (a few on misses), with no lock and,
/// for a provider kind the table has no `KIND/` entries of, no allocation.
#[derive(Clone)]
pub struct Pricer {
    table: Cow<'static, PriceTable>,
    global: HashMap<String, ModelPrice>,
    providers: HashMap<String, ProviderPrices>,
}

#[derive(Clone)]
struct ProviderPrices {
    prices: HashMap<String, ModelPrice>,
    factor: f64,
}

/// A summary: the proxy's settings are printed with `{:?}`, and the table has thousands of
/// entries.
impl std::fmt::Debug for Pricer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pricer")
            .field("table", &self.table.source)
            .field("models", &self.table.len())
            .field("overrides", &self.global.len())
            .field("providers", &self.providers.len())
            .finish()
    }
}

/// What pricing a record found.
#[derive(Debug, Clone, PartialEq)]
pub enum Priced {
    Cost(Cost),
    /// The record used tokens of a model neither the config nor the table prices.
    UnknownModel,
    /// The record has no usage: nothing to price.
    NothingUsed,
}

impl Pricer {
    /// `table` replaces the shipped table when given; `overrides` are checked here.
    pub fn new(table: Option<PriceTable>, overrides: &Overrides) -> Result<Self, FieldError> {
        overrides.check()?;
        let mut providers = HashMap::with_capacity(overrides.providers.len());
        for (name, p) in &overrides.providers {
            providers.insert(
                name.clone(),
                ProviderPrices {
                    prices: to_prices(&p.prices)?,
                    factor: p.price_factor,
                },
            );
        }
        Ok(Self {
            table: table.map_or_else(|| Cow::Borrowed(PriceTable::shipped()), Cow::Owned),
            global: to_prices(&overrides.global)?,
            providers,
        })
    }

    /// The shipped table with no overrides.
    pub fn shipped() -> Self {
        Self {
            table: Cow::Borrowed(PriceTable::shipped()),
            global: HashMap::new(),
            providers: HashMap::new(),
        }
    }

    pub fn table(&self) -> &PriceTable {
        &self.table
    }

    /// The price of the first of `names` anything prices, and the factor to apply. The
    /// provider's own prices come first (no factor), then `[prices]`, then the table (both
    /// times the provider's factor); each source is asked for every name before the next.
    pub fn lookup(
        &self,
        provider: Option<&str>,
        kind: Option<&str>,
        names: [Option<&str>; 2],
    ) -> Option<(&ModelPrice, f64)> {
        let own = provider.and_then(|p| self.providers.get(p));
        let factor = own.map_or(1.0, |p| p.factor);
        let names = || names.into_iter().flatten();
        if let Some(own) = own.filter(|p| !p.prices.is_empty()) {
            if let Some(hit) = names().find_map(|n| normalise::find(n, None, |k| own.prices.get(k)))
            {
                return Some((hit, 1.0));
            }
        }
        if !self.global.is_empty() {
            if let Some(hit) =
                names().find_map(|n| normalise::find(n, None, |k| self.global.get(k)))
            {
                return Some((hit, factor));
            }
        }
        let kind = kind.filter(|k| self.table.has_prefix(k));
        names()
            .find_map(|n| normalise::find(n, kind, |k| self.table.get(k)))
            .map(|hit| (hit, factor))
    }

    /// What `record` cost, from its usage and model names.
    pub fn price(&self, record: &GenerationRecord) -> Priced {
        let Some(usage) = &record.usage else {
            return Priced::NothingUsed;
        };
        let route = record.route.as_ref();
        let provider = route.map(|r| r.provider.as_str());
        let kind = route.map(|r| r.provider_kind.as_str());
        match self.lookup(provider, kind, normalise::model_names(record)) {
            Some((p, factor)) => Priced::Cost(price::cost(p, usage, factor)),
            None => Priced::UnknownModel,
        }
    }

    /// Fills `record.cost` and `record.cost_unknown_model`.
    pub fn apply(&self, record: &mut GenerationRecord) {
        match self.price(record) {
            Priced::Cost(c) => {
                record.cost = Some(c);
                record.cost_unknown_model = false;
            }
            Priced::UnknownModel => {
                record.cost = None;
                record.cost_unknown_model = true;
            }
            Priced::NothingUsed => {
                record.cost = None;
                record.cost_unknown_model = false;
            }
        }
    }
}

fn to_prices(
    overrides: &BTreeMap<String, PriceOverride>,
) -> Result<HashMap<String, ModelPrice>, FieldError> {
    overrides
        .iter()
        .map(|(name, o)| o.to_price().map(|p| (name.clone(), p)))
        .collect()
}
