#!/usr/bin/env bash
# Regenerate the plots of docs/scenarios/*.md (`make plots`). Each is one irqflow command;
# the sweeps run in parallel worker processes. Takes a minute or two.
set -euo pipefail
cd "$(dirname "$0")/../.."
IRQFLOW=${IRQFLOW:-.venv/bin/irqflow}
IMG=docs/img/scenarios
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

$IRQFLOW run scenarios/five-stages.toml --no-progress --plot $IMG/five-stages.png > /dev/null
$IRQFLOW run scenarios/irq-storm.toml --no-progress --plot $IMG/irq-storm.png > /dev/null
$IRQFLOW sweep scenarios/receive-livelock.toml --no-progress --csv "$OUT/a.csv" \
  --set device.eth0.rate=50000:800000:50000 --set device.eth0.napi=false,true \
  --metric eth0.delivered_per_s --plot $IMG/receive-livelock.png
$IRQFLOW sweep scenarios/ksoftirqd-fairness.toml --no-progress --csv "$OUT/b.csv" \
  --set device.eth0.rate=25000:300000:25000 --set machine.config.ksoftirqd_defers=false,true \
  --metric eth0.delivered_per_s --plot $IMG/ksoftirqd-fairness.png
$IRQFLOW sweep scenarios/threaded-irqs.toml --no-progress --csv "$OUT/c.csv" \
  --set device.noisy.rate=2000:24000:2000 --set device.noisy.threaded=false,true \
  --metric "io submit->wake|rt.p99_us" --plot $IMG/threaded-irqs-latency.png
$IRQFLOW sweep scenarios/threaded-irqs.toml --no-progress --csv "$OUT/d.csv" \
  --set device.noisy.rate=2000:24000:2000 --set device.noisy.threaded=false,true \
  --metric "event->serviced|noisy.p99_us" --plot $IMG/threaded-irqs-service.png
$IRQFLOW sweep scenarios/workqueue-sleepers.toml --no-progress --csv "$OUT/e.csv" \
  --set device.sensor.rate=500:8000:500 \
  --set machine.config.workqueue_model=per-cpu-threads,cmwq \
  --metric sensor.delivered_per_s --plot $IMG/workqueue-sleepers.png
echo "plots written to $IMG"
