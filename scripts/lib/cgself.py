# cgself.py OLD.cg OLD.n NEW.cg NEW.n: self cost per request of every function in two callgrind outputs
# (the .n files hold each run's request count), the largest growth first. Used by scripts/pathcounts.sh.
import sys, re, collections
def self_costs(path):
    names = {}
    cost = collections.Counter()
    fn = None
    skip_next = False
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        if line.startswith('fn='):
            m = re.match(r'fn=\((\d+)\)(?: (.*))?', line)
            if m:
                if m.group(2): names[m.group(1)] = m.group(2)
                fn = names.get(m.group(1), m.group(1))
            else:
                fn = line[3:]
            continue
        if line.startswith(('cfn=', 'cfi=', 'cfl=', 'cob=')):
            m = re.match(r'c(fn)=\((\d+)\)(?: (.*))?', line)
            if m and m.group(3): names[m.group(2)] = m.group(3)
            continue
        if line.startswith('calls='):
            skip_next = True
            continue
        if line and (line[0].isdigit() or line[0] in '+-*'):
            parts = line.split()
            if skip_next:
                skip_next = False
                continue
            if fn is not None and len(parts) >= 2:
                cost[fn] += int(parts[1])
    return cost
a = self_costs(sys.argv[1]); na = int(open(sys.argv[2]).read())
b = self_costs(sys.argv[3]); nb = int(open(sys.argv[4]).read())
print("totals/req", sum(a.values())/na, sum(b.values())/nb)
keys = set(a) | set(b)
rows = sorted(keys, key=lambda k: -(b[k]/nb - a[k]/na))
for k in rows[:25]:
    print("%9.1f %9.1f %+8.1f  %s" % (a[k]/na, b[k]/nb, b[k]/nb - a[k]/na, k[:110]))
print('...')
for k in rows[-12:]:
    print("%9.1f %9.1f %+8.1f  %s" % (a[k]/na, b[k]/nb, b[k]/nb - a[k]/na, k[:110]))
