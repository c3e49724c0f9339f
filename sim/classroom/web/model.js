// What the view knows about MQTT and the devices, apart from drawing.

// matches reports whether an MQTT topic filter matches a topic name (MQTT 3.1.1 §4.7).
export function matches(filter, topic) {
  const share = filter.match(/^\$share\/[^/]+\/(.*)$/);
  if (share) filter = share[1];
  const f = filter.split("/"), t = topic.split("/");
  if (t[0].startsWith("$") && (f[0] === "#" || f[0] === "+")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// describe says how a device looks: the word shown big, a detail line, and a class.
export function describe(d, r = {}) {
  const s = d.state || "?";
  switch (d.kind) {
    case "phone": return { word: s === "away" ? "outside" : "inside", cls: s === "away" ? "active" : "", detail: r.distance_m !== undefined ? `${r.distance_m} m from home` : "" };
    case "bulb": return { word: s === "on" ? "lit" : "dark", cls: s === "on" ? "lit" : "dark" };
    case "heater": return { word: s, cls: s === "on" ? "active" : "dark", detail: r.setpoint !== undefined ? `set point ${Number(r.setpoint).toFixed(1)} °C` : "" };
    case "camera": return { word: s === "armed" ? "armed" : "not armed", cls: s === "armed" ? "active" : "dark" };
    case "vacuum": return { word: s, cls: s === "cleaning" ? "active" : "dark" };
    case "sensor": return { word: r.celsius !== undefined ? `${Number(r.celsius).toFixed(1)} °C` : s, cls: "", detail: r.location || "" };
    default: return { word: s, cls: "" };
  }
}
