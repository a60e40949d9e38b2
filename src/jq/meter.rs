//! The metered data type jaq evaluates with: its term look-up counts steps, checks the clock
//! and the stack, and stops an evaluation whose budget is spent; and the natives replaced
//! with metered or bounded ones.

use std::cell::Cell;
use std::fmt;
use std::panic;
use std::time::{Duration, Instant};

use jaq_core::data::{DataT, HasLut};
use jaq_core::native::{Fun, v};
use jaq_core::{Exn, ValXs};
use jaq_json::Val;
use serde_json::Value;

use super::*;

/// The data type programs run with: jaq's JSON values, and a [`Meter`] as global data.
pub struct Metered;

impl DataT for Metered {
    type V<'a> = Val;
    type Data<'a> = Meter<'a>;
}

/// The look-up table of a program, handed out only through the gauge.
#[derive(Clone)]
pub struct Meter<'a> {
    pub(super) lut: &'a Lut,
    pub(super) gauge: &'a Gauge,
}

impl<'a> HasLut<'a, Metered> for Meter<'a> {
    fn lut(&self) -> &'a Lut {
        self.gauge.step();
        self.lut
    }
}

/// Why an evaluation was stopped; the payload of its unwinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Steps(u64),
    Time(Duration),
    Depth,
    Bytes(usize),
}

impl fmt::Display for Stop {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Steps(steps) => write!(formatter, "ran out of its budget of {steps} evaluation steps"),
            Stop::Time(time) => write!(formatter, "ran out of its time budget of {} ms", time.as_millis()),
            Stop::Bytes(bytes) => {
                write!(formatter, "built values larger than its budget of {} MiB", bytes.div_ceil(1 << 20))
            }
            Stop::Depth => {
                write!(formatter, "recursed too deeply (more than {} MiB of stack)", EVALUATION_STACK >> 20)
            }
        }
    }
}

/// Counts the steps of one evaluation and stops it when its budget is spent.
pub struct Gauge {
    pub(super) steps: Cell<u64>,
    budget: Budget,
    deadline: Instant,
    /// The lowest stack address the evaluation may reach (stacks grow down).
    stack_floor: usize,
    /// [`live_bytes`] when the evaluation began.
    bytes_at_start: isize,
}

impl Gauge {
    pub(super) fn new(budget: Budget, stack_base: usize) -> Gauge {
        Gauge {
            steps: Cell::new(0),
            budget,
            deadline: Instant::now() + budget.time,
            stack_floor: stack_base.saturating_sub(EVALUATION_STACK),
            bytes_at_start: live_bytes(),
        }
    }

    #[inline]
    fn step(&self) {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.budget.steps {
            stop(Stop::Steps(self.budget.steps));
        }
        if steps.is_multiple_of(256) && Instant::now() > self.deadline {
            stop(Stop::Time(self.budget.time));
        }
        if stack_address() < self.stack_floor {
            stop(Stop::Depth);
        }
        // Between two steps one native operation may allocate much at once (string
        // repetition), so the budget can be overshot by that one operation, never more.
        if live_bytes().wrapping_sub(self.bytes_at_start) > self.budget.bytes as isize {
            stop(Stop::Bytes(self.budget.bytes));
        }
    }
}

/// Unwinds the evaluation. `resume_unwind` does not run the panic hook, so nothing is printed;
/// the evaluator thread catches it (`serve_evaluations`). jaq's evaluation state is discarded
/// whole, never observed after. (Built with `panic = "abort"`, this would end the process.)
pub(super) fn stop(reason: Stop) -> ! {
    panic::resume_unwind(Box::new(reason))
}

/// An address in the current stack frame.
#[inline(always)]
pub(super) fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The native filters programs may call: jaq's, with `range` metered, `fromjson` bounded, `env`
/// removed and `debug`/`stderr` silent.
pub(super) fn natives() -> impl Iterator<Item = Fun<Metered>> {
    let silent =
        |name: &'static str| -> Fun<Metered> { jaq_core::native::run((name, v(0), |_| Box::new(std::iter::empty()))) };
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, arguments, _)| {
            !matches!(
                (*name, arguments.len()),
                ("range", 3) | ("fromjson", 0) | ("env", 0) | ("debug_empty", 0) | ("stderr_empty", 0)
            )
        })
        .chain([
            jaq_core::native::run::<Metered>(("range", v(3), metered_range)),
            jaq_core::native::run::<Metered>(("fromjson", v(0), bounded_fromjson)),
            silent("debug_empty"),
            silent("stderr_empty"),
        ])
}

/// `fromjson`: every JSON value in the input string, parsed by `serde_json`, which refuses
/// nesting deeper than 128 levels (jaq's parser recurses without a limit).
pub(super) fn bounded_fromjson(cv: jaq_core::Cv<'_, Metered>) -> ValXs<'_, Val> {
    let text = match &cv.1 {
        Val::TStr(bytes) => bytes.clone(),
        other => {
            let error = jaq_core::Error::typ(other.clone(), "string");
            return Box::new(std::iter::once(Err(Exn::from(error))));
        }
    };
    let mut values = serde_json::Deserializer::from_slice(&text).into_iter::<Value>();
    let mut failed = false;
    let parsed: Vec<_> = std::iter::from_fn(|| {
        if failed {
            return None;
        }
        match values.next()? {
            Ok(value) => Some(Ok(to_val(&value))),
            Err(error) => {
                failed = true;
                let error = jaq_core::Error::str(format_args!("cannot parse {} as JSON: {error}", cv.1));
                Some(Err(Exn::from(error)))
            }
        }
    })
    .collect();
    Box::new(parsed.into_iter())
}

/// `range($from; $upto; $by)`, one step per output: `$from`, `$from + $by`, … while short of
/// `$upto` in the direction of `$by` (for a zero `$by`, while different from `$upto`).
pub(super) fn metered_range(mut cv: jaq_core::Cv<'_, Metered>) -> ValXs<'_, Val> {
    let gauge = cv.0.data().gauge;
    let by = cv.0.pop_var();
    let upto = cv.0.pop_var();
    let from = cv.0.pop_var();
    let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(std::cmp::Ordering::Equal);
    let mut next = Some(Ok(from));
    Box::new(std::iter::from_fn(move || {
        gauge.step();
        match next.take()? {
            Ok(current) => {
                let going = match direction {
                    std::cmp::Ordering::Greater => current < upto,
                    std::cmp::Ordering::Less => current > upto,
                    std::cmp::Ordering::Equal => current != upto,
                };
                if !going {
                    return None;
                }
                next = Some((current.clone() + by.clone()).map_err(Exn::from));
                Some(Ok(current))
            }
            Err(error) => Some(Err(error)),
        }
    }))
}
