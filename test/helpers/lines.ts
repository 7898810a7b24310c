/** An access-log destination for tests: every line the logger writes, parsed. */
export class Lines {
  readonly all: Array<Record<string, unknown>> = [];
  write(line: string): void {
    this.all.push(JSON.parse(line) as Record<string, unknown>);
  }
}
