//! `l3d report`: the tables, figures and report page of a finished decomposition, again.

use super::reopen;
use crate::args::ReportArgs;
use crate::error::Result;
use crate::report::{write_reports, Decomposed};
use crate::ui::Ui;

pub(super) fn report(a: ReportArgs, ui: &Ui) -> Result<()> {
    let (run, loaded, data, saved) = reopen(&a.dir, ui)?;
    let decomposed = Decomposed {
        model: &loaded.model,
        toy: loaded.toy.as_ref(),
        d: &saved.decomposition,
        config: &run.l3d,
        data: &data,
        history: &saved.meta.history,
        settings: &run.analysis,
    };
    let reports = write_reports(&a.dir, &decomposed, ui)?;
    ui.result(
        &format!(
            "{}\nreport.json, figures and report.html rewritten in {}",
            reports.table(loaded.toy.as_ref()),
            a.dir.display()
        ),
        serde_json::json!({ "report": reports.generic, "analysis": reports.analysis }),
    );
    Ok(())
}
