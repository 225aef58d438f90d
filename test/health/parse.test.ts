import { describe, expect, it } from 'vitest';
import { mountPointOf, parseChronyTracking, parseDiskstats, parseLoadavg, parseMeminfo, parseMilliCelsius, parseMountinfo, parseSmartHealth } from '../../src/health/parse.js';

describe('/proc and /sys parsers', () => {
  it('loadavg and meminfo', () => {
    expect(parseLoadavg('0.52 0.58 0.59 1/467 12345\n')).toEqual({ load1: 0.52, load5: 0.58, load15: 0.59 });
    expect(parseLoadavg('garbage')).toBeNull();
    const m = parseMeminfo('MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nSwapTotal:         0 kB\nSwapFree: 0 kB\n');
    expect(m).toEqual({ totalBytes: 1024000, availableBytes: 256000, usedPercent: 75, swapTotalBytes: 0, swapFreeBytes: 0 });
    expect(parseMeminfo('')).toBeNull();
  });
  it('diskstats, mountinfo and the mount holding a path', () => {
    const d = parseDiskstats('   8       1 sda1 100 0 800 10 50 0 400 5 0 20 15 0 0 0 0\n');
    expect(d.get('sda1')).toEqual({ readsCompleted: 100, sectorsRead: 800, writesCompleted: 50, sectorsWritten: 400, ioMillis: 20 });
    const mi = parseMountinfo('22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 8:17 / /srv/rec\\040a rw - ext4 /dev/sdb1 rw\n');
    expect(mi.get('/srv/rec a')).toBe('8:17');
    expect(mountPointOf('/srv/rec a/cam1', mi.keys())).toBe('/srv/rec a');
    expect(mountPointOf('/srv/recx', mi.keys())).toBe('/');
  });
  it('temperatures, SMART and chrony', () => {
    expect(parseMilliCelsius('45500\n')).toBe(45.5);
    expect(parseMilliCelsius('-300000')).toBeNull();
    expect(parseSmartHealth('{"smart_status":{"passed":false}}')).toBe('failed');
    expect(parseSmartHealth('SMART overall-health self-assessment test result: PASSED')).toBe('passed');
    expect(parseSmartHealth('')).toBe('unknown');
    expect(parseChronyTracking('Reference ID : 0\nLeap status     : Not synchronised\n')).toBe('unsynchronized');
    expect(parseChronyTracking('Leap status     : Normal\n')).toBe('synchronized');
  });
});
