//! `anpi jma replay FILE|DIR…`: feeds stored telegrams through the intake, as the feed poller
//! and the push endpoint do, for drills and tests.

use crate::DbArgs;
use anpi_core::{Clock, SystemClock};
use anpi_intake::{Accepted, Intake, IntakeError, Source};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ReplayArgs {
    /// Telegram files, or directories whose *.xml files are replayed in name order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Keep the telegrams' own spacing (by their report times), N times faster; 0 = no waiting.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Make every incident a drill (【訓練】), whatever the telegrams say.
    #[arg(long)]
    pub drill: bool,
}

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
                .collect();
            in_dir.sort();
            out.extend(in_dir);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn report_time(xml: &[u8]) -> Option<i64> {
    anpi_jma::parse_telegram(xml).ok().map(|t| t.head.report_datetime.timestamp_millis())
}

pub async fn replay(db: &DbArgs, args: ReplayArgs) -> anyhow::Result<()> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be 0 or more");
    }
    let store = db.store().await?;
    // The serving process's outbox worker sends what this queues.
    let intake = Intake::new(store.clone(), Arc::new(SystemClock), store.outbox_ready());
    let source = if args.drill { Source::DrillReplay } else { Source::Replay };
    let (mut rejected, mut previous) = (0, None::<i64>);
    for file in files(&args.paths)? {
        let xml = std::fs::read(&file)?;
        if args.speed > 0.0 {
            if let (Some(prev), Some(at)) = (previous, report_time(&xml)) {
                let wait = ((at - prev).max(0) as f64 / args.speed) as u64;
                tokio::time::sleep(Duration::from_millis(wait.min(3_600_000))).await;
            }
            previous = report_time(&xml).or(previous);
        }
        let started = SystemClock.now();
        match intake.accept(&xml, source).await {
            Ok(Accepted::New { telegram_id, decisions }) => {
                println!("{}: telegram #{telegram_id}, {decisions} rule decision(s), {} ms", show(&file), SystemClock.now() - started)
            }
            Ok(Accepted::Duplicate { telegram_id }) => println!("{}: already received as telegram #{telegram_id}", show(&file)),
            Err(IntakeError::Rejected(reason)) => {
                rejected += 1;
                println!("{}: rejected: {reason}", show(&file));
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.close().await;
    if rejected > 0 {
        anyhow::bail!("{rejected} telegram(s) rejected");
    }
    Ok(())
}

fn show(p: &Path) -> String {
    p.display().to_string()
}
