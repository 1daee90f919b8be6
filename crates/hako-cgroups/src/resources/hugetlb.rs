//! linux.resources.hugepageLimits.
//!
//! v1 writes hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max. Where the kernel has
//! reservation accounting (.rsvd.*), the same limit goes there too, as runc does, so
//! that a reservation cannot exceed what faults would be allowed.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::error::Error;
use crate::fs;

/// "2MB", "1GB", "64KB": digits then a unit, as the kernel names the files.
pub(super) fn validate(limits: &[LinuxHugepageLimit]) -> Result<(), Error> {
    for l in limits {
        let size = l.page_size();
        let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
        let unit = &size[digits.len()..];
        let ok = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && matches!(unit, "KB" | "MB" | "GB");
        if !ok {
            return Err(Error::InvalidResource {
                setting: "hugepageLimits.pageSize",
                value: size.clone(),
                reason: "expected a size such as 2MB or 1GB",
            });
        }
    }
    Ok(())
}

fn limit_value(limit: i64, v2: bool) -> String {
    match limit {
        l if l < 0 && v2 => "max".to_owned(),
        l if l < 0 => "-1".to_owned(),
        l => l.to_string(),
    }
}

pub(super) fn apply(dir: &Path, limits: &[LinuxHugepageLimit], v2: bool) -> Result<(), Error> {
    for l in limits {
        let size = l.page_size();
        let (file, rsvd) = if v2 {
            (
                format!("hugetlb.{size}.max"),
                format!("hugetlb.{size}.rsvd.max"),
            )
        } else {
            (
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
            )
        };
        let value = limit_value(l.limit(), v2);
        fs::write_setting(dir, "hugetlb", &file, &value)?;
        if dir.join(&rsvd).exists() {
            fs::write_setting(dir, "hugetlb", &rsvd, &value)?;
        }
    }
    Ok(())
}
