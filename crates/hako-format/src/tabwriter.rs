//! Column alignment as Go's `text/tabwriter` does it for Docker's tables
//! (`NewWriter(out, 10, 1, 3, ' ', 0)`): minimum cell width 10, padding 3.

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Aligns tab-separated cells into columns. The text after the last tab of a line is
/// not part of a column and is never padded. Widths count characters, not bytes.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + PADDING).max(MIN_WIDTH);
            match widths.get_mut(i) {
                Some(old) => *old = (*old).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (n, cells) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i < last {
                let pad = widths[i] - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}
