//! What `show` says is what `export` serves: an AMC execution belongs to one week even when
//! several collections cover the same window; a rerun that is cancelled or fails leaves the week
//! serving its previous execution; retention holds through reruns; controls racing from several
//! processes end in a state one of them asked for; an execution AMC lost is collected again.

mod adoption;
mod closed_stdout;
mod controls_race;
mod lost_execution;
mod reruns;
