// Prometheus metrics in the text exposition format, without a client library: a few counters and one
// histogram are all the API exports.
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines;
  }
}

class Histogram {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(labels: Labels, value: number): void {
    const key = labelText(labels);
    const s = this.series.get(key) ?? { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i] = (s.counts[i] ?? 0) + 1;
    });
    s.sum += value;
    s.count += 1;
    this.series.set(key, s);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i] ?? 0}`));
      lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

export class ApiMetrics {
  readonly requests = new Counter('ferry_api_requests_total', 'HTTP requests answered, by method, route and status code.');
  readonly duration = new Histogram('ferry_api_request_duration_seconds', 'HTTP request duration in seconds, by method and route.', [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  ]);
  readonly migrationsStarted = new Counter('ferry_api_migrations_started_total', 'Live migrations started through the API.');
  readonly controlRequests = new Counter('ferry_api_control_requests_total', 'Abort and force-complete requests, by action and outcome.');
  readonly backendErrors = new Counter('ferry_api_backend_errors_total', 'Calls to Temporal that failed, by operation.');
  readonly streams = new Counter('ferry_api_progress_streams_total', 'Progress event streams opened.');
  private readonly startedAt = Date.now();

  render(): string {
    const lines = [
      ...this.requests.render(),
      ...this.duration.render(),
      ...this.migrationsStarted.render(),
      ...this.controlRequests.render(),
      ...this.backendErrors.render(),
      ...this.streams.render(),
      '# HELP ferry_api_uptime_seconds Seconds since the API process started.',
      '# TYPE ferry_api_uptime_seconds gauge',
      `ferry_api_uptime_seconds ${(Date.now() - this.startedAt) / 1000}`,
    ];
    return `${lines.join('\n')}\n`;
  }
}
