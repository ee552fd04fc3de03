//! `dra grid` (also `dra bench`, its earlier name): accuracy grids of training runs, as
//! against the speed benchmarks of `benches/`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::output::Bars;
use dra::grid::{Grid, aggregate, markdown, run_grid, write_tables};

#[derive(Debug, Args)]
pub struct GridArgs {
    /// Grid file (TOML): `name`, a `[base]` table of `dra train` settings, a `[grid]` table
    /// of settings to vary (lists; `seed` lists are aggregated to mean ± std), `knn`.
    #[arg(long)]
    config: PathBuf,
    /// Folder for the cells' run directories and the tables; rerun to resume.
    #[arg(long)]
    out: PathBuf,
    /// Write the tables of the cells finished so far and run nothing (e.g. while the grid
    /// runs in another process, or after it was interrupted).
    #[arg(long)]
    report: bool,
}

pub fn run(a: GridArgs) -> Result<()> {
    let grid = Grid::read(&a.config)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let first = grid
        .cells()?
        .first()
        .map(|c| (c.config.epochs, c.config.steps_per_epoch))
        .unwrap_or((0, 0));
    let mut bars = Bars::new(first.0, first.1);
    let results = match a.report {
        true => dra::grid::finished_results(&grid, &a.out)?,
        false => run_grid(&grid, &a.out, &mut bars, |i, n, cell, resumed| {
            let what = if resumed {
                "finished before"
            } else {
                "running"
            };
            eprintln!("cell {}/{n} {} ({what})", i + 1, cell.id);
        })?,
    };
    let rows = aggregate(&results);
    let files = write_tables(&a.out, &grid.name, &rows)?;
    println!("{}", markdown(&grid.name, &rows));
    let names: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
    println!("tables: {}", names.join(", "));
    Ok(())
}
