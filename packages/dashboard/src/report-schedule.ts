/**
 * The report on a schedule (`dashboard({ reportSchedule })`): every `interval`, the report is
 * rendered once and written to `file` (a temporary file renamed over it, so a reader never
 * sees half a report) and/or POSTed to `webhook`. A failure is logged once per kind and
 * never stops the schedule; the timer is unref'd and `close()` waits for a delivery in flight.
 */
import { rename, writeFile } from 'node:fs/promises';
import type { OnceLogger } from '@perfstack/core';
import type { ReportScheduleConfig } from './options.js';
import type { PerformanceReport } from './report.js';
import { REPORT_MEDIA_TYPES, renderReport } from './report-format.js';

/** What one delivery did. */
export interface ReportDelivery {
  readonly file?: 'written' | 'failed';
  readonly webhook?: number | 'failed';
}

export class ReportSchedule {
  readonly #config: ReportScheduleConfig;
  readonly #report: () => PerformanceReport;
  readonly #log: OnceLogger;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<ReportDelivery> | undefined;
  #deliveries = 0;

  constructor(config: ReportScheduleConfig, report: () => PerformanceReport, log: OnceLogger) {
    this.#config = config;
    this.#report = report;
    this.#log = log;
  }

  /** Reports delivered (attempted) so far. */
  get deliveries(): number {
    return this.#deliveries;
  }

  start(): void {
    this.#timer = setInterval(() => void this.deliver(), this.#config.interval);
    this.#timer.unref();
  }

  /** Renders and delivers the report now; one delivery at a time. */
  deliver(): Promise<ReportDelivery> {
    this.#inFlight ??= this.#deliver().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #deliver(): Promise<ReportDelivery> {
    const { file, webhook, format, timeout } = this.#config;
    const body = renderReport(this.#report(), format);
    this.#deliveries++;
    const [fileResult, webhookResult] = await Promise.all([
      file === undefined ? undefined : this.#write(file, body),
      webhook === undefined ? undefined : this.#post(webhook, body, REPORT_MEDIA_TYPES[format], timeout),
    ]);
    return {
      ...(fileResult === undefined ? {} : { file: fileResult }),
      ...(webhookResult === undefined ? {} : { webhook: webhookResult }),
    };
  }

  async #write(file: string, body: string): Promise<'written' | 'failed'> {
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(temporary, body);
      await rename(temporary, file);
      return 'written';
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_REPORT_FILE_FAILED', `could not write the scheduled report to ${file}`, {
        error: String(error),
      });
      return 'failed';
    }
  }

  async #post(url: URL, body: string, contentType: string, timeout: number): Promise<number | 'failed'> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
        signal: AbortSignal.timeout(timeout),
      });
      await response.arrayBuffer();
      if (response.status < 200 || response.status > 299) {
        this.#log.warnOnce(
          'DASHBOARD_REPORT_WEBHOOK_STATUS',
          `the report webhook ${url.origin} answered ${response.status}`,
        );
      }
      return response.status;
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_REPORT_WEBHOOK_FAILED', `could not POST the scheduled report to ${url.origin}`, {
        error: String(error),
      });
      return 'failed';
    }
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }
}
