//! `cebra plot`: an embedding as a 2-D scatter (a 3-D projected view for 3+ dimensions) or the loss
//! curve of a saved solver, as PNG. Text is drawn with an embedded font (DejaVu Sans Mono), so
//! nothing depends on the system's fonts.
use super::{arrays, CliResult};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Embedding (rows, dims): .npy, .npz[:NAME] or .safetensors[:TENSOR].
    #[arg(required_unless_present = "loss", conflicts_with = "loss")]
    pub embedding: Option<String>,
    /// Colour the points by these labels (one row per embedding row; the first column of 2-D
    /// labels; integer labels as classes). Without it, points are coloured by time.
    #[arg(long)]
    pub color: Option<String>,
    /// Embedding dimensions to show, comma-separated (2 or 3 of them) [default: 0,1,2 or 0,1].
    #[arg(long, value_delimiter = ',')]
    pub dims: Vec<usize>,
    /// Plot the loss curve stored in a saved solver instead.
    #[arg(long, value_name = "MODEL")]
    pub loss: Option<PathBuf>,
    /// Output PNG file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Image width and height in pixels.
    #[arg(long, default_value_t = 800)]
    pub size: u32,
    /// Title [default: the input's name].
    #[arg(long)]
    pub title: Option<String>,
}

fn register_font() -> CliResult {
    for style in [FontStyle::Normal, FontStyle::Bold] {
        plotters::style::register_font("sans-serif", style, FONT).map_err(|_| "the embedded font is invalid".to_string())?;
    }
    Ok(())
}

fn draw_err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Renders `draw` into a `width x height` RGB image and writes it as PNG.
fn render_png(path: &Path, (width, height): (u32, u32), draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> CliResult) -> CliResult {
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        return Err(format!("-o '{}': plots are written as .png files", path.display()));
    }
    if !(64..=8192).contains(&width) || !(64..=8192).contains(&height) {
        return Err(format!("image size {width}x{height}: each side must be 64..=8192 pixels"));
    }
    register_font()?;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create '{}': {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let w = |e: png::EncodingError| format!("cannot write '{}': {e}", path.display());
    let mut writer = encoder.write_header().map_err(w)?;
    writer.write_image_data(&rgb).map_err(w)?;
    writer.finish().map_err(w)
}

/// Viridis, piecewise linear through five of its colours; `t` in 0..=1.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One colour per row: continuous values through viridis, classes through a categorical palette.
fn colours(color: Option<&str>, rows: usize) -> CliResult<(Vec<RGBColor>, String)> {
    let Some(spec) = color else {
        let c = (0..rows).map(|i| viridis(i as f64 / rows.saturating_sub(1).max(1) as f64)).collect();
        return Ok((c, "colour: time".into()));
    };
    let labels = arrays::read(spec)?;
    let (n, cols) = labels.rows_cols("--color labels")?;
    if n != rows {
        return Err(format!("--color '{spec}' has {n} rows, the embedding has {rows}: they must match"));
    }
    let values = labels.to_f64();
    let first: Vec<f64> = values.chunks(cols.max(1)).map(|r| r[0]).collect();
    if !labels.is_float() {
        return Ok((first.iter().map(|&c| Palette99::pick(c.max(0.0) as usize).to_rgba().rgb()).map(|(r, g, b)| RGBColor(r, g, b)).collect(), format!("colour: {spec} (classes)")));
    }
    if let Some(i) = first.iter().position(|v| !v.is_finite()) {
        return Err(format!("--color '{spec}': row {i} is {}", first[i]));
    }
    let (lo, hi) = first.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    Ok((first.iter().map(|&v| viridis((v - lo) / span)).collect(), format!("colour: {spec} ({lo:.3} .. {hi:.3})")))
}

/// `[lo, hi]` of one column with a 5 % margin (a constant column gets a unit range).
fn range(values: &[f32], dims: usize, column: usize) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .iter()
        .skip(column)
        .step_by(dims)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v as f64), b.max(v as f64)));
    if hi <= lo || !hi.is_finite() {
        return (lo - 0.5)..(lo + 0.5);
    }
    let m = 0.05 * (hi - lo);
    (lo - m)..(hi + m)
}

pub fn plot_embedding(spec: &str, color: Option<&str>, dims_shown: &[usize], output: &Path, size: u32, title: Option<&str>) -> CliResult {
    let loaded = arrays::read(spec)?;
    let (rows, dims) = loaded.rows_cols("embedding")?;
    if rows == 0 {
        return Err(format!("embedding '{spec}' has no rows"));
    }
    let values: Vec<f32> = loaded.to_f64().into_iter().map(|v| v as f32).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("embedding '{spec}' must be finite; row {} has {}", i / dims, values[i]));
    }
    let shown: Vec<usize> = if dims_shown.is_empty() { (0..dims.min(3)).collect() } else { dims_shown.to_vec() };
    if let Some(&d) = shown.iter().find(|&&d| d >= dims) {
        return Err(format!("--dims: dimension {d} does not exist (the embedding has {dims}: 0..{})", dims - 1));
    }
    if !dims_shown.is_empty() && !(2..=3).contains(&shown.len()) {
        return Err(format!("--dims: give 2 or 3 dimensions, got {}", shown.len()));
    }
    let (point_colours, legend) = colours(color, rows)?;
    let name = Path::new(spec).file_name().map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned());
    let title = title.map(str::to_string).unwrap_or_else(|| format!("{name}: {rows} x {dims}"));
    let column = |d: usize| values.iter().skip(d).step_by(dims).map(|&v| v as f64).collect::<Vec<f64>>();
    render_png(output, (size, size), |root| {
        let root = root.titled(&title, ("sans-serif", 18)).map_err(draw_err)?;
        let (body, footer) = root.split_vertically(size as i32 - 50);
        footer.draw_text(&legend, &("sans-serif", 14).into_text_style(&footer), (10, 12)).map_err(draw_err)?;
        match shown.len() {
            1 => {
                // One dimension: the embedding over time.
                let y = column(shown[0]);
                let mut chart = ChartBuilder::on(&body)
                    .margin(10)
                    .x_label_area_size(35)
                    .y_label_area_size(50)
                    .build_cartesian_2d(0f64..rows as f64, range(&values, dims, shown[0]))
                    .map_err(draw_err)?;
                chart.configure_mesh().x_desc("time step").y_desc(format!("dim {}", shown[0])).draw().map_err(draw_err)?;
                chart
                    .draw_series(y.iter().enumerate().map(|(i, &v)| Circle::new((i as f64, v), 1, point_colours[i].filled())))
                    .map_err(draw_err)?;
            }
            2 => {
                let (x, y) = (column(shown[0]), column(shown[1]));
                let mut chart = ChartBuilder::on(&body)
                    .margin(10)
                    .x_label_area_size(35)
                    .y_label_area_size(50)
                    .build_cartesian_2d(range(&values, dims, shown[0]), range(&values, dims, shown[1]))
                    .map_err(draw_err)?;
                chart
                    .configure_mesh()
                    .x_desc(format!("dim {}", shown[0]))
                    .y_desc(format!("dim {}", shown[1]))
                    .draw()
                    .map_err(draw_err)?;
                chart
                    .draw_series((0..rows).map(|i| Circle::new((x[i], y[i]), 2, point_colours[i].mix(0.6).filled())))
                    .map_err(draw_err)?;
            }
            _ => {
                let (x, y, z) = (column(shown[0]), column(shown[1]), column(shown[2]));
                let mut chart = ChartBuilder::on(&body)
                    .margin(20)
                    .build_cartesian_3d(
                        range(&values, dims, shown[0]),
                        range(&values, dims, shown[1]),
                        range(&values, dims, shown[2]),
                    )
                    .map_err(draw_err)?;
                chart.with_projection(|mut p| {
                    p.pitch = 0.45;
                    p.yaw = 0.6;
                    p.scale = 0.85;
                    p.into_matrix()
                });
                chart
                    .configure_axes()
                    .light_grid_style(BLACK.mix(0.1))
                    .max_light_lines(4)
                    .label_style(("sans-serif", 12))
                    .draw()
                    .map_err(draw_err)?;
                chart
                    .draw_series((0..rows).map(|i| Circle::new((x[i], y[i], z[i]), 2, point_colours[i].mix(0.6).filled())))
                    .map_err(draw_err)?;
                body.draw_text(
                    &format!("dims {}, {}, {} (projected)", shown[0], shown[1], shown[2]),
                    &("sans-serif", 14).into_text_style(&body),
                    (10, 10),
                )
                .map_err(draw_err)?;
            }
        }
        Ok(())
    })
}

/// The loss per step, with a running mean over 50 steps.
pub fn plot_loss(loss: &[f64], output: &Path, size: u32, title: &str) -> CliResult {
    if loss.is_empty() {
        return Err("the loss history is empty (no steps were recorded)".into());
    }
    if let Some(i) = loss.iter().position(|v| !v.is_finite()) {
        return Err(format!("the loss at step {} is {}", i + 1, loss[i]));
    }
    let (lo, hi) = loss.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let margin = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    let window = 50.min(loss.len());
    let mut running = Vec::with_capacity(loss.len());
    let mut sum = 0.0;
    for (i, v) in loss.iter().enumerate() {
        sum += v;
        if i >= window {
            sum -= loss[i - window];
        }
        running.push(sum / (i + 1).min(window) as f64);
    }
    let height = size * 5 / 8;
    render_png(output, (size, height.max(64)), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..loss.len().max(2) as f64, (lo - margin)..(hi + margin))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(loss.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)), BLUE.mix(0.5)))
            .map_err(draw_err)?
            .label("loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.5)));
        chart
            .draw_series(LineSeries::new(running.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)), RED.stroke_width(2)))
            .map_err(draw_err)?
            .label(format!("mean of {window} steps"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

pub fn run(args: &PlotArgs) -> CliResult {
    if let Some(model) = &args.loss {
        if args.color.is_some() || !args.dims.is_empty() {
            return Err("--color and --dims apply to embeddings, not to --loss".into());
        }
        let solver = cebra::train::Solver::load(model).map_err(|e| e.to_string())?;
        let history = solver.history().map_err(|e| e.to_string())?;
        let title = args.title.clone().unwrap_or_else(|| format!("{}: loss", model.display()));
        plot_loss(&history.loss, &args.output, args.size, &title)?;
    } else {
        let spec = args.embedding.as_deref().expect("clap requires EMBEDDING without --loss");
        plot_embedding(spec, args.color.as_deref(), &args.dims, &args.output, args.size, args.title.as_deref())?;
    }
    println!("wrote {}", args.output.display());
    Ok(())
}
