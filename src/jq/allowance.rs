//! What an evaluation may spend: a program's whole budget, or a slice of it for evaluations
//! inside a write transaction, and why an evaluation gave no value.

use std::fmt;
use std::time::Duration;

use super::*;

/// What one evaluation may spend: its program's whole [`Budget`], or a short slice of it. The
/// engine evaluates inside a write transaction only within a slice, so a slow program never
/// holds the database's write turn: overrunning the slice is not a failure but
/// [`Stopped::SliceSpent`], and the caller evaluates the program again with the whole budget
/// outside any transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    budget: Budget,
    slice: Option<Slice>,
}

/// The steps and time a slice of a budget allows (its bytes are the budget's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub steps: u64,
    pub time: Duration,
}

impl Allowance {
    /// The whole budget, with its steps at most [`MAX_STEPS`] and nothing below one unit.
    pub fn whole(budget: Budget) -> Allowance {
        let budget = Budget {
            steps: budget.steps.clamp(1, MAX_STEPS),
            time: budget.time.max(Duration::from_millis(1)),
            bytes: budget.bytes.max(1),
        };
        Allowance { budget, slice: None }
    }

    /// At most `slice` of the budget.
    pub fn sliced(budget: Budget, slice: Slice) -> Allowance {
        Allowance { slice: Some(slice), ..Allowance::whole(budget) }
    }

    /// What the evaluation may spend here.
    pub(super) fn limits(&self) -> Budget {
        match self.slice {
            None => self.budget,
            Some(slice) => Budget {
                steps: slice.steps.min(self.budget.steps),
                time: slice.time.min(self.budget.time),
                bytes: self.budget.bytes,
            },
        }
    }

    /// Whether `stop` only spent the slice, and the whole budget would go further.
    fn slice_spent(&self, stop: Stop) -> bool {
        match (self.slice, stop) {
            (Some(slice), Stop::Steps(_)) => slice.steps < self.budget.steps,
            (Some(slice), Stop::Time(_)) => slice.time < self.budget.time,
            _ => false,
        }
    }

    pub(super) fn stopped(&self, fault: Fault) -> Stopped {
        match fault {
            Fault::Stop(stop) if self.slice_spent(stop) => Stopped::SliceSpent,
            fault => Stopped::Failed(fault.to_string()),
        }
    }
}

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The program failed (an error, a halt, or its whole budget spent): the message says why.
    Failed(String),
    /// Only the slice was spent: evaluate again with the whole budget.
    SliceSpent,
}

impl fmt::Display for Stopped {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Failed(message) => formatter.write_str(message),
            Stopped::SliceSpent => formatter.write_str("ran out of its slice of the budget"),
        }
    }
}
