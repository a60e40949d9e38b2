//! Evaluator threads: each evaluation runs on a thread whose stack is sized from its step
//! budget; idle threads are kept for reuse and retired after heavy work.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use jaq_core::{Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

use super::*;

/// Why an evaluation gave no outputs: an error, or the meter stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    Error(String),
    Stop(Stop),
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Error(message) => formatter.write_str(message),
            Fault::Stop(stop) => stop.fmt(formatter),
        }
    }
}

/// One evaluation handed to an evaluator thread.
pub(super) struct Job {
    filter: Arc<Filter>,
    input: Value,
    budget: Budget,
    /// The outcome, and whether the evaluator may take another job.
    reply: mpsc::SyncSender<(Result<Vec<Value>, Fault>, bool)>,
}

/// An idle evaluator thread: where to send its next job, and its stack size.
pub(super) struct Evaluator {
    jobs: mpsc::Sender<Job>,
    stack: usize,
}

/// Idle evaluator threads, each waiting for its next job.
pub(super) static IDLE: Mutex<Vec<Evaluator>> = Mutex::new(Vec::new());

/// Runs `filter` over `input` on an evaluator thread, under `budget`, and waits for the outcome.
/// The caller blocks for at most about the budget's time: the evaluation stops itself then.
pub(super) fn evaluate(filter: &Arc<Filter>, input: &Value, budget: Budget) -> Result<Vec<Value>, Fault> {
    let stack = stack_for(budget);
    let (reply, answer) = mpsc::sync_channel(1);
    let mut job = Job { filter: filter.clone(), input: input.clone(), budget, reply };
    let evaluator = loop {
        let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let evaluator = match idle {
            // One with too small a stack for this budget ends as it is dropped.
            Some(evaluator) if evaluator.stack < stack => continue,
            Some(evaluator) => evaluator,
            None => spawn_evaluator(stack).map_err(Fault::Error)?,
        };
        match evaluator.jobs.send(job) {
            Ok(()) => break evaluator,
            // That evaluator has stopped; try another.
            Err(mpsc::SendError(returned)) => job = returned,
        }
    };
    let (outcome, reusable) =
        answer.recv().map_err(|_| Fault::Error("the jq evaluator stopped unexpectedly".to_owned()))?;
    if reusable {
        let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_EVALUATORS {
            idle.push(evaluator);
        }
    }
    outcome
}

pub(super) fn spawn_evaluator(stack: usize) -> Result<Evaluator, String> {
    let (jobs, receiver) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("orgata-jq".to_owned())
        .stack_size(stack)
        .spawn(move || serve_evaluations(&receiver, stack))
        .map_err(|error| format!("cannot start a jq evaluator thread with a {} MiB stack: {error}", stack >> 20))?;
    Ok(Evaluator { jobs, stack })
}

/// An evaluator thread: runs jobs until it is dropped from the pool, or until a job was stopped,
/// panicked or ran many steps (ending the thread gives its stack pages back).
pub(super) fn serve_evaluations(jobs: &mpsc::Receiver<Job>, stack: usize) {
    let stack_base = stack_address();
    while let Ok(Job { filter, input, budget, reply }) = jobs.recv() {
        if stack_for(budget) > stack {
            let error = Fault::Error("the jq evaluator's stack is too small for the budget".to_owned());
            let _ = reply.send((Err(error), false));
            return;
        }
        let gauge = Gauge::new(budget, stack_base);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_metered(&filter, &input, &gauge)));
        let (outcome, reusable) = match outcome {
            Ok(outcome) => (outcome.map_err(Fault::Error), gauge.steps.get() <= RETIRE_AFTER_STEPS),
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => (Err(Fault::Stop(*stop)), false),
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    (Err(Fault::Error(format!("the jq evaluator failed: {message}"))), false)
                }
            },
        };
        drop((filter, input));
        // The caller may have gone; then the outcome is nobody's.
        let _ = reply.send((outcome, reusable));
        if !reusable {
            return;
        }
    }
}

/// The evaluation itself, on an evaluator thread; `gauge` may unwind out of it.
pub(super) fn run_metered(filter: &Filter, input: &Value, gauge: &Gauge) -> Result<Vec<Value>, String> {
    let context = Ctx::<Metered>::new(Meter { lut: &filter.lut, gauge }, Vars::new([]));
    let mut outputs = Vec::new();
    for output in filter.id.run((context, to_val(input))) {
        if outputs.len() == MAX_OUTPUTS {
            return Err(format!("produced more than {MAX_OUTPUTS} outputs"));
        }
        // Never `jaq_core::unwrap_valr`: on `halt` it exits the process.
        let value = output.map_err(|exception| match exception.get_err() {
            Ok(error) => match error.into_val() {
                Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
                other => other.to_string(),
            },
            Err(exception) => match exception.get_halt() {
                Ok(code) => format!("halted with exit code {code}"),
                Err(_) => "the program raised an exception it did not catch".to_owned(),
            },
        })?;
        outputs.push(from_val(value, 0)?);
    }
    Ok(outputs)
}
