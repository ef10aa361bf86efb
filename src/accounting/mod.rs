//! Usage, prices, counters and budgets.

pub mod budget;
pub mod global;
pub mod global_view;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod prices;
pub mod rate;
pub mod refusal;
