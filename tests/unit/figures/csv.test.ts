/** Figure tables as CSV (RFC 4180, CRLF, non-finite markers) and JSON rows. */
import { describe, expect, it } from 'vitest';
import { tableToCsv, tableToJson } from '../../../hooks/figures/index.ts';

describe('tableToCsv / tableToJson', () => {
  const t = { columns: ['token', 'value', 'ok'], rows: [[' Mary', 1.5, true], ['a,"b"', -Infinity, null], ['x\ny', NaN, false]] };
  it('quotes commas, quotes, newlines and edge spaces; CRLF line ends; non-finite as the API writes them', () => {
    expect(tableToCsv(t)).toBe('token,value,ok\r\n" Mary",1.5,true\r\n"a,""b""",-Infinity,\r\n"x\ny",NaN,false\r\n');
  });
  it('JSON rows keyed by column', () => {
    expect(JSON.parse(tableToJson(t))).toEqual([
      { token: ' Mary', value: 1.5, ok: true },
      { token: 'a,"b"', value: '-Infinity', ok: null },
      { token: 'x\ny', value: 'NaN', ok: false },
    ]);
  });
});
