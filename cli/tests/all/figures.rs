//! The figures on small and on degenerate data: each renders an SVG holding its titles and
//! labels, degenerate input (empty, all zero, NaN, constant) draws without panicking,
//! inconsistent input is a typed error, and the HTML report escapes text and inlines figures.

use std::path::Path;

use l3d_cli::figures::*;

fn tensor(name: &str, shape: &[usize], values: Vec<f32>) -> ParamTensor {
    ParamTensor::new(name, shape, values).unwrap()
}

/// A TMS-like model (2 hidden, 3 features): W_enc [2, 3], b [3], and two subnetworks.
fn tms_heatmaps() -> SubnetworkHeatmaps {
    let model = vec![
        tensor("W_enc", &[2, 3], vec![0.9, -0.4, 0.1, 0.2, 0.8, -0.7]),
        tensor("b", &[3], vec![-0.1, 0.05, -0.2]),
    ];
    let subnetworks = (0..2)
        .map(|k| Subnetwork {
            name: format!("subnetwork {k}"),
            tensors: vec![
                tensor(
                    "W_enc",
                    &[2, 3],
                    (0..6).map(|i| (i + k) as f32 - 2.5).collect(),
                ),
                tensor("b", &[3], vec![0.0, k as f32, -1.0]),
            ],
        })
        .collect();
    SubnetworkHeatmaps {
        title: "TMS decomposition".to_string(),
        model,
        subnetworks,
    }
}

fn sweep(name: &str, n_samples: usize) -> InterventionSweep {
    let deltas: Vec<f32> = (0..11).map(|i| i as f32 * 0.2 - 1.0).collect();
    let changes = (0..n_samples)
        .map(|s| deltas.iter().map(|d| d * d * (s + 1) as f32).collect())
        .collect();
    InterventionSweep {
        subnetwork: name.to_string(),
        y_label: "output change".to_string(),
        deltas,
        changes,
        relevant: (0..n_samples).map(|s| s % 2 == 0).collect(),
    }
}

fn a_matrices(heatmaps: bool) -> AMatrixScatter {
    let true_a = Matrix::new("A", 2, 3, vec![0.5, 2.0, 1.0, 3.0, 0.1, 2.5]).unwrap();
    let derived: Vec<f32> = true_a.values().iter().map(|a| 0.3 * a + 0.01).collect();
    AMatrixScatter {
        title: "derived A against true A".to_string(),
        derived_a: Matrix::new("a_hat", 2, 3, derived).unwrap(),
        true_a,
        heatmaps,
    }
}

fn curves() -> ErrorCurves {
    ErrorCurves {
        title: "error against rank".to_string(),
        x_label: "rank".to_string(),
        y_label: "relative reconstruction error".to_string(),
        series: vec![
            Series {
                label: "n_v = 5".to_string(),
                points: vec![(1.0, 0.3), (2.0, 0.2), (3.0, 0.15)],
            },
            Series {
                label: "n_v = 10".to_string(),
                points: vec![(1.0, 0.25), (2.0, 0.12), (3.0, 0.1)],
            },
        ],
        reference: Some(ReferenceLine {
            label: "paper".to_string(),
            value: 0.19,
        }),
    }
}

fn impacts(annotate: bool) -> ImpactMatrix {
    let values = (0..6).map(|i| i as f32 * 0.1).collect();
    ImpactMatrix {
        title: "impact per feature".to_string(),
        row_axis: "subnetwork".to_string(),
        col_axis: "input feature".to_string(),
        row_labels: vec!["v0".to_string(), "v1".to_string()],
        col_labels: vec!["x0".to_string(), "x1".to_string(), "x2".to_string()],
        values: Matrix::new("impact", 2, 3, values).unwrap(),
        annotate,
    }
}

fn assert_svg(svg: &str, texts: &[&str]) {
    assert!(
        svg.starts_with("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in texts {
        assert!(svg.contains(text), "the SVG lacks {text:?}");
    }
}

#[test]
fn subnetwork_heatmaps_name_rows_and_tensors() {
    let svg = subnetwork_heatmaps(&tms_heatmaps()).unwrap();
    assert_svg(
        &svg,
        &[
            "TMS decomposition",
            "model: W_enc",
            "model: b",
            "subnetwork 1: W_enc",
            "subnetwork 0: b",
        ],
    );
}

#[test]
fn subnetwork_heatmaps_reject_mismatched_tensors() {
    let mut figure = tms_heatmaps();
    figure.subnetworks[1].tensors[0] = tensor("W_enc", &[3, 2], vec![0.0; 6]);
    let err = subnetwork_heatmaps(&figure).unwrap_err();
    assert!(matches!(err, FigureError::Shape { .. }), "{err}");
    figure.subnetworks[1].tensors.pop();
    let err = subnetwork_heatmaps(&figure).unwrap_err();
    assert!(
        matches!(
            err,
            FigureError::Length {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn subnetwork_heatmaps_survive_degenerate_tensors() {
    let empty = SubnetworkHeatmaps {
        title: "nothing".to_string(),
        model: vec![],
        subnetworks: vec![],
    };
    assert_svg(&subnetwork_heatmaps(&empty).unwrap(), &["nothing"]);
    let odd = SubnetworkHeatmaps {
        title: "odd".to_string(),
        model: vec![
            tensor("zeros", &[2, 2], vec![0.0; 4]),
            tensor("nan", &[3], vec![f32::NAN, f32::INFINITY, 1.0]),
            tensor("none", &[0, 4], vec![]),
            tensor("scalar", &[], vec![2.0]),
        ],
        subnetworks: vec![Subnetwork {
            name: "all nan".to_string(),
            tensors: vec![
                tensor("zeros", &[2, 2], vec![f32::NAN; 4]),
                tensor("nan", &[3], vec![f32::NAN; 3]),
                tensor("none", &[0, 4], vec![]),
                tensor("scalar", &[], vec![0.0]),
            ],
        }],
    };
    assert_svg(
        &subnetwork_heatmaps(&odd).unwrap(),
        &["model: nan", "all nan: scalar", "empty"],
    );
}

#[test]
fn intervention_sweep_labels_both_groups() {
    let svg = intervention_sweep(&sweep("subnetwork 1", 4)).unwrap();
    assert_svg(
        &svg,
        &[
            "subnetwork 1",
            "output change",
            "delta",
            "relevant samples (2)",
            "other samples (2)",
        ],
    );
    let grid =
        intervention_sweep_grid("all subnetworks", &[sweep("v0", 3), sweep("v1", 2)], 2).unwrap();
    assert_svg(&grid, &["all subnetworks", "v0", "v1"]);
}

#[test]
fn intervention_sweep_survives_degenerate_data() {
    let mut flat = sweep("flat", 3);
    flat.changes = vec![vec![0.0; 11]; 3];
    flat.changes[1][4] = f32::NAN;
    flat.deltas[0] = f32::NAN;
    assert_svg(&intervention_sweep(&flat).unwrap(), &["flat"]);
    let empty = InterventionSweep {
        subnetwork: "no samples".to_string(),
        y_label: "change".to_string(),
        deltas: vec![],
        changes: vec![],
        relevant: vec![],
    };
    assert_svg(&intervention_sweep(&empty).unwrap(), &["no samples"]);
    let mut all_nan = sweep("all nan", 2);
    all_nan.changes = vec![vec![f32::NAN; 11]; 2];
    assert_svg(&intervention_sweep(&all_nan).unwrap(), &["all nan"]);
    assert_svg(&intervention_sweep_grid("none", &[], 3).unwrap(), &["none"]);
    assert_svg(
        &intervention_sweep_grid("zero columns", &[sweep("v", 1)], 0).unwrap(),
        &["v"],
    );
}

#[test]
fn intervention_sweep_rejects_ragged_data() {
    let mut ragged = sweep("ragged", 3);
    ragged.changes[2].pop();
    assert!(matches!(
        intervention_sweep(&ragged),
        Err(FigureError::Length {
            expected: 11,
            got: 10,
            ..
        })
    ));
    let mut flags = sweep("flags", 3);
    flags.relevant.pop();
    assert!(intervention_sweep_grid("grid", &[flags], 1).is_err());
}

#[test]
fn a_matrix_scatter_reports_r_squared() {
    let svg = a_matrix_scatter(&a_matrices(false)).unwrap();
    // a_hat is an exact affine function of A, so r^2 = 1.
    assert_svg(
        &svg,
        &[
            "derived A against true A",
            "r² = 1.000",
            "true A",
            "derived A",
        ],
    );
    let svg = a_matrix_scatter(&a_matrices(true)).unwrap();
    assert_svg(
        &svg,
        &["true A  (max |v| 3.00)", "derived A  (max |v| 0.91)"],
    );
}

#[test]
fn a_matrix_scatter_survives_degenerate_data() {
    let zeros = Matrix::new("A", 2, 2, vec![0.0; 4]).unwrap();
    let nan = Matrix::new("a_hat", 2, 2, vec![f32::NAN; 4]).unwrap();
    let figure = AMatrixScatter {
        title: "degenerate".to_string(),
        true_a: zeros,
        derived_a: nan,
        heatmaps: true,
    };
    assert_svg(&a_matrix_scatter(&figure).unwrap(), &["r² = undefined"]);
    let empty = Matrix::new("A", 0, 0, vec![]).unwrap();
    let figure = AMatrixScatter {
        title: "empty".to_string(),
        true_a: empty.clone(),
        derived_a: empty,
        heatmaps: true,
    };
    assert_svg(&a_matrix_scatter(&figure).unwrap(), &["empty"]);
}

#[test]
fn a_matrix_scatter_rejects_different_shapes() {
    let mut figure = a_matrices(true);
    figure.derived_a = Matrix::new("a_hat", 3, 2, vec![0.0; 6]).unwrap();
    assert!(matches!(
        a_matrix_scatter(&figure),
        Err(FigureError::Shape { .. })
    ));
}

#[test]
fn r_squared_is_scale_free_and_undefined_without_spread() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let y = [-2.0, -4.0, -6.0, -8.0];
    assert!((r_squared(&x, &y).unwrap() - 1.0).abs() < 1e-6);
    // y = [1, 3, 2, 4]: cov = 1.0, var x = var y = 1.25 (means 2.5), r^2 = (1 / 1.25)^2 = 0.64.
    let r2 = r_squared(&x, &[1.0, 3.0, 2.0, 4.0]).unwrap();
    assert!((r2 - 0.64).abs() < 1e-6, "{r2}");
    assert_eq!(r_squared(&x, &[1.0; 4]), None);
    assert_eq!(r_squared(&[1.0], &[2.0]), None);
    assert_eq!(r_squared(&x, &[1.0, 2.0]), None);
    let with_nan = r_squared(&[1.0, f32::NAN, 2.0, 3.0], &[2.0, 0.0, 4.0, 6.0]).unwrap();
    assert!((with_nan - 1.0).abs() < 1e-6);
}

#[test]
fn error_curves_label_series_and_reference() {
    let svg = error_curves(&curves()).unwrap();
    assert_svg(
        &svg,
        &[
            "error against rank",
            "rank",
            "relative reconstruction error",
            "n_v = 5",
            "n_v = 10",
            "paper (0.19)",
        ],
    );
}

#[test]
fn error_curves_survive_degenerate_data() {
    let mut figure = curves();
    figure.series = vec![];
    figure.reference = None;
    assert_svg(&error_curves(&figure).unwrap(), &["error against rank"]);
    figure.series = vec![
        Series {
            label: "constant".to_string(),
            points: vec![(3.0, 0.2), (3.0, 0.2)],
        },
        Series {
            label: "nan".to_string(),
            points: vec![(f32::NAN, 0.1), (1.0, f32::NAN)],
        },
        Series {
            label: "empty".to_string(),
            points: vec![],
        },
    ];
    figure.reference = Some(ReferenceLine {
        label: "nan reference".to_string(),
        value: f32::NAN,
    });
    assert_svg(
        &error_curves(&figure).unwrap(),
        &["constant", "nan", "empty"],
    );
}

#[test]
fn impact_matrix_labels_and_annotates() {
    let svg = impact_matrix(&impacts(true)).unwrap();
    assert_svg(
        &svg,
        &[
            "impact per feature",
            "subnetwork",
            "input feature",
            "v1",
            "x2",
            "0.50",
        ],
    );
    let plain = impact_matrix(&impacts(false)).unwrap();
    assert!(!plain.contains("0.30"));
}

#[test]
fn impact_matrix_survives_degenerate_data_and_rejects_bad_labels() {
    let mut figure = impacts(true);
    figure.values = Matrix::new("impact", 2, 3, vec![f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    assert_svg(&impact_matrix(&figure).unwrap(), &["NaN"]);
    figure.values = Matrix::new("impact", 0, 0, vec![]).unwrap();
    figure.row_labels = vec![];
    figure.col_labels = vec![];
    assert_svg(&impact_matrix(&figure).unwrap(), &["empty"]);
    figure.row_labels = vec!["v0".to_string()];
    assert!(matches!(
        impact_matrix(&figure),
        Err(FigureError::Length {
            expected: 0,
            got: 1,
            ..
        })
    ));
}

#[test]
fn html_report_escapes_text_and_inlines_figures() {
    let heatmaps = subnetwork_heatmaps(&tms_heatmaps()).unwrap();
    let curves = error_curves(&curves()).unwrap();
    let report = Report {
        title: "L3D on <TMS>".to_string(),
        header: vec!["model".to_string(), "error & rank".to_string()],
        rows: vec![vec!["TMS".to_string(), "0.19 < 0.2".to_string()]],
        notes: Vec::new(),
        tables: vec![ReportTable {
            heading: "by <class>".to_string(),
            header: vec!["class".to_string()],
            rows: vec![vec!["3 & 5".to_string()]],
        }],
        figures: vec![
            ReportFigure {
                caption: "Fig. 2 \"subnetworks\"".to_string(),
                svg: heatmaps.clone(),
            },
            ReportFigure {
                caption: "Fig. S5".to_string(),
                svg: curves.clone(),
            },
        ],
    };
    let html = html_report(&report);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>L3D on &lt;TMS&gt;</title>"));
    assert!(html.contains("<th>error &amp; rank</th>"));
    assert!(html.contains("<td>0.19 &lt; 0.2</td>"));
    assert!(html.contains("<h2>by &lt;class&gt;</h2>\n<table>\n<tr><th>class</th></tr>"));
    assert!(html.contains("<td>3 &amp; 5</td>"));
    assert!(html.contains("<figcaption>Fig. 2 &quot;subnetworks&quot;</figcaption>"));
    assert!(html.contains(&heatmaps) && html.contains(&curves));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(!html.contains("<script") && !html.contains("src="));
}

#[test]
fn writes_replace_files_atomically_and_report_io_errors() {
    let dir = std::env::temp_dir().join(format!("l3d-figures-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("curves.svg");
    std::fs::write(&path, "old").unwrap();
    write_error_curves(&path, &curves()).unwrap();
    write_subnetwork_heatmaps(&dir.join("heatmaps.svg"), &tms_heatmaps()).unwrap();
    write_intervention_sweep(&dir.join("sweep.svg"), &sweep("v", 2)).unwrap();
    write_intervention_sweep_grid(&dir.join("grid.svg"), "grid", &[sweep("v", 2)], 1).unwrap();
    write_a_matrix_scatter(&dir.join("a.svg"), &a_matrices(true)).unwrap();
    write_impact_matrix(&dir.join("impact.svg"), &impacts(true)).unwrap();
    let report = Report {
        title: "report".to_string(),
        header: vec![],
        rows: vec![],
        notes: Vec::new(),
        tables: Vec::new(),
        figures: vec![],
    };
    write_html_report(&dir.join("report.html"), &report).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // No temporary file is left behind.
    assert_eq!(
        names,
        [
            "a.svg",
            "curves.svg",
            "grid.svg",
            "heatmaps.svg",
            "impact.svg",
            "report.html",
            "sweep.svg"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = Path::new("/nonexistent-l3d-dir/figure.svg");
    let err = write_error_curves(missing, &curves()).unwrap_err();
    assert!(matches!(err, FigureError::Io(_)));
    assert!(
        err.to_string().contains("/nonexistent-l3d-dir/figure.svg"),
        "{err}"
    );
}
