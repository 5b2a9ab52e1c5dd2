//! Usage times rates: the one place a token becomes a dollar.
//!
//! `Usage::input_tokens` is the total input for every provider, cache reads and cache writes
//! included (the gateway adds Anthropic's, which it reports beside `input_tokens`). So each
//! input token is priced exactly once: uncached at the input rate, cache reads and writes at
//! theirs. Reasoning tokens are a subset of the output in the same way.

use crate::cost::table::ModelPrice;
use crate::record::{Cost, Usage};

const PER_MTOK: f64 = 1_000_000.0;

/// What `usage` cost at `price`, times `factor` (a provider's discount or markup). The tier
/// is chosen by the prompt's size, all of it.
pub fn cost(price: &ModelPrice, usage: &Usage, factor: f64) -> Cost {
    let r = price.rates_for(usage.input_tokens);
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let cache_write = usage.cache_creation_input_tokens.unwrap_or(0);
    // Saturating: a provider that reports more cached than total input is priced on what it
    // reported as cached, never on a negative remainder.
    let uncached = usage
        .input_tokens
        .saturating_sub(cache_read)
        .saturating_sub(cache_write);
    let reasoning = usage
        .reasoning_output_tokens
        .unwrap_or(0)
        .min(usage.output_tokens);
    let plain_output = usage.output_tokens - reasoning;

    let input = uncached as f64 * r.input
        + cache_read as f64 * r.cache_read.unwrap_or(r.input)
        + cache_write as f64 * r.cache_write.unwrap_or(r.input);
    let output =
        plain_output as f64 * r.output + reasoning as f64 * r.reasoning.unwrap_or(r.output);
    let input_usd = input / PER_MTOK * factor;
    let output_usd = output / PER_MTOK * factor;
    Cost {
        input_usd,
        output_usd,
        total_usd: input_usd + output_usd,
    }
}
