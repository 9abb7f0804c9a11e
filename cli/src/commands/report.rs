//! `l3d report`: the tables, figures and report page of a finished decomposition, again.

use super::reopen;
use crate::args::ReportArgs;
use crate::error::Result;
use crate::report::{generic_table, toy_table};
use crate::ui::Ui;

pub(super) fn report(a: ReportArgs, ui: &Ui) -> Result<()> {
    let (run, loaded, data, saved) = reopen(&a.dir, ui)?;
    let d = &saved.decomposition;
    let history = &saved.meta.history;
    let generic =
        crate::report::generic_report(&loaded.model, d, &run.l3d, &data, history, &run.analysis)?;
    let analysis = match &loaded.toy {
        Some(toy) => Some(toys::analysis::analyse(
            toy.into(),
            d,
            &run.l3d,
            history,
            &run.analysis,
        )?),
        None => None,
    };
    crate::report::write_figures(
        &a.dir,
        &loaded,
        d,
        &run.l3d,
        &data,
        analysis.as_ref(),
        &generic,
        &run.analysis,
    )?;
    let table = match (&analysis, &loaded.toy) {
        (Some(an), Some(toy)) => {
            toy_table(toy.kind.name(), an, toy.kind.paper().reconstruction_error)
        }
        _ => generic_table(&generic),
    };
    ui.result(
        &format!(
            "{table}\nfigures and report.html rewritten in {}",
            a.dir.display()
        ),
        serde_json::json!({ "report": generic, "analysis": analysis }),
    );
    Ok(())
}
