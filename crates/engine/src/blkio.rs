//! Docker's block I/O flags as `linux.resources.blockIO`: `--blkio-weight`
//! (10 to 1000) and the per-device throttles `--device-read-bps`,
//! `--device-write-bps` (a size per second: `1mb`), `--device-read-iops`
//! and `--device-write-iops` (a count per second), each `DEVICE:RATE` with
//! DEVICE a host block device.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxResources, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
};

use crate::error::{invalid, EngineError};
use crate::limits::Limits;

/// `DEVICE:RATE` as a throttle; `bytes` says whether RATE is a size.
fn throttle(
    option: &'static str,
    value: &str,
    bytes: bool,
) -> Result<LinuxThrottleDevice, EngineError> {
    let (dev, rate) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(option, value, "expected DEVICE:RATE"))?;
    let meta = std::fs::metadata(dev).map_err(|e| invalid(option, value, format!("{dev}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(
            option,
            value,
            format!("{dev} is not a block device"),
        ));
    }
    let rate: u64 = if bytes {
        crate::limits::parse_size(option, rate)? as u64
    } else {
        rate.parse()
            .map_err(|_| invalid(option, value, format!("{rate:?} is not a number")))?
    };
    let rdev = meta.rdev();
    LinuxThrottleDeviceBuilder::default()
        .major(libc::major(rdev) as i64)
        .minor(libc::minor(rdev) as i64)
        .rate(rate)
        .build()
        .map_err(|e| EngineError::Spec(e.to_string()))
}

/// Sets the block I/O flags of `l` in `res` (those not given stay).
pub fn apply(res: &mut LinuxResources, l: &Limits) -> Result<(), EngineError> {
    let any = l.blkio_weight.is_some()
        || !l.device_read_bps.is_empty()
        || !l.device_write_bps.is_empty()
        || !l.device_read_iops.is_empty()
        || !l.device_write_iops.is_empty();
    if !any {
        return Ok(());
    }
    let mut b: LinuxBlockIo = res.block_io().clone().unwrap_or_default();
    if let Some(w) = l.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(invalid(
                "--blkio-weight",
                &w.to_string(),
                "the range is 10 to 1000",
            ));
        }
        b.set_weight(Some(w));
    }
    let list = |option,
                values: &[String],
                bytes|
     -> Result<Option<Vec<LinuxThrottleDevice>>, EngineError> {
        if values.is_empty() {
            return Ok(None);
        }
        values
            .iter()
            .map(|v| throttle(option, v, bytes))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    if let Some(v) = list("--device-read-bps", &l.device_read_bps, true)? {
        b.set_throttle_read_bps_device(Some(v));
    }
    if let Some(v) = list("--device-write-bps", &l.device_write_bps, true)? {
        b.set_throttle_write_bps_device(Some(v));
    }
    if let Some(v) = list("--device-read-iops", &l.device_read_iops, false)? {
        b.set_throttle_read_iops_device(Some(v));
    }
    if let Some(v) = list("--device-write-iops", &l.device_write_iops, false)? {
        b.set_throttle_write_iops_device(Some(v));
    }
    res.set_block_io(Some(b));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_throttles() {
        let dev = ["/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1"]
            .into_iter()
            .find(|d| std::fs::metadata(d).is_ok_and(|m| m.file_type().is_block_device()));
        let mut res = LinuxResources::default();
        let mut l = Limits {
            blkio_weight: Some(300),
            ..Default::default()
        };
        if let Some(d) = dev {
            l.device_read_bps = vec![format!("{d}:1mb")];
            l.device_write_iops = vec![format!("{d}:100")];
        }
        apply(&mut res, &l).unwrap();
        let b = res.block_io().clone().unwrap();
        assert_eq!(b.weight(), Some(300));
        if dev.is_some() {
            assert_eq!(
                b.throttle_read_bps_device().clone().unwrap()[0].rate(),
                1 << 20
            );
            assert_eq!(
                b.throttle_write_iops_device().clone().unwrap()[0].rate(),
                100
            );
        }
        let bad = |l: Limits| {
            apply(&mut LinuxResources::default(), &l)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(Limits {
            blkio_weight: Some(5),
            ..Default::default()
        })
        .contains("10 to 1000"));
        assert!(bad(Limits {
            device_read_bps: vec!["/dev/null:1mb".into()],
            ..Default::default()
        })
        .contains("not a block device"));
        assert!(bad(Limits {
            device_read_iops: vec!["/dev/nothing".into()],
            ..Default::default()
        })
        .contains("DEVICE:RATE"));
    }
}
