//! `l3d report`: the tables, figures and report page of a finished decomposition, again.

use super::reopen;
use crate::args::ReportArgs;
use crate::checkpoint;
use crate::error::{Result, RunError};
use crate::files::shell_quote;
use crate::folder::{self, OutputFolder};
use crate::report::{write_reports, Decomposed};
use crate::ui::Ui;

pub(super) fn report(a: ReportArgs, ui: &Ui) -> Result<()> {
    let folder = OutputFolder::acquire(&a.dir, ui)?;
    if checkpoint::latest(&a.dir.join(folder::STAGING)).is_some() {
        return Err(RunError::Setting(format!(
            "{} holds a run that stopped before it finished; continue it first with `l3d decompose --resume {}`",
            a.dir.display(),
            shell_quote(&a.dir.display().to_string())
        )));
    }
    let super::Reopened {
        run,
        loaded,
        data,
        labels,
        saved,
    } = reopen(&a.dir, a.force, ui)?;
    let decomposed = Decomposed {
        model: &loaded.model,
        toy: loaded.toy.as_ref(),
        d: &saved.decomposition,
        config: &run.l3d,
        data: &data,
        history: &saved.meta.history,
        settings: &run.analysis,
        labels: labels.as_deref(),
    };
    folder.clear_staging()?;
    let reports = write_reports(&folder.staging()?, &decomposed, ui)?;
    folder.commit(false)?;
    let mut table = reports.table(loaded.toy.as_ref());
    if let Some(dir) = crate::induction::folder_of(&run.model) {
        let d = &saved.decomposition;
        let p_act = &reports.generic.p_act;
        let (text, _) =
            crate::induction::write_report(&a.dir, dir, &loaded.model, d, &data, p_act)?;
        table = format!("{table}\n\n{text}");
    }
    ui.result(
        &format!(
            "{table}\nreport.json, figures and report.html rewritten in {}",
            a.dir.display()
        ),
        serde_json::json!({ "report": reports.generic, "analysis": reports.analysis }),
    );
    Ok(())
}
