//! Wall time of every set-up step and every suite (and, inside a suite, compiling apart from
//! running where the two can be told apart), printed as one table at the end of a run, so a slow
//! machine or a slow change shows where its minutes went.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Step {
    depth: usize,
    name: String,
    secs: f64,
    ok: bool,
}

static STEPS: Mutex<Vec<Step>> = Mutex::new(Vec::new());

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` as a named step; steps started inside it are listed under it, indented.
pub fn step<T, E>(name: impl Into<String>, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let depth = DEPTH.with(|d| d.get());
    // Reserve the row now so that a step's sub-steps are listed after it.
    let index = {
        let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
        steps.push(Step {
            depth,
            name: name.into(),
            secs: 0.0,
            ok: false,
        });
        steps.len() - 1
    };
    DEPTH.with(|d| d.set(depth + 1));
    let started = Instant::now();
    let outcome = f();
    let secs = started.elapsed().as_secs_f64();
    DEPTH.with(|d| d.set(depth));
    let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    steps[index].secs = secs;
    steps[index].ok = outcome.is_ok();
    outcome
}

/// A step timed elsewhere (another thread), listed where it ends, at the top level.
pub fn record(name: impl Into<String>, secs: f64, ok: bool) {
    let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    steps.push(Step {
        depth: 0,
        name: name.into(),
        secs,
        ok,
    });
}

/// The table of every step so far, as Markdown (the README keeps a copy of a cold run's).
pub fn table() -> String {
    let steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::from("| step | wall time |\n|---|---:|\n");
    for step in steps.iter() {
        let indent = "· ".repeat(step.depth);
        let failed = if step.ok { "" } else { " (failed)" };
        out.push_str(&format!(
            "| {indent}{}{failed} | {} |\n",
            step.name,
            human(step.secs)
        ));
    }
    out
}

fn human(secs: f64) -> String {
    if secs >= 60.0 {
        format!("{}:{:02} min", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{secs:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_steps_are_listed_under_their_step_and_failures_are_marked() {
        let _ = step("outer", || {
            step("inner ok", || Ok::<_, ()>(()))?;
            step("inner bad", || Err::<(), _>(()))
        });
        let table = table();
        let outer = table.find("| outer (failed) |").expect("outer row");
        let inner = table.find("| · inner ok |").expect("inner row");
        let bad = table.find("| · inner bad (failed) |").expect("failed row");
        assert!(outer < inner && inner < bad, "{table}");
        record("elsewhere", 61.0, true);
        let after = super::table();
        let elsewhere = after
            .find("| elsewhere | 1:01 min |")
            .expect("recorded row");
        assert!(elsewhere > after.find("| · inner bad").unwrap(), "{after}");
        assert_eq!(human(75.0), "1:15 min");
        assert_eq!(human(7.24), "7.2 s");
    }
}
