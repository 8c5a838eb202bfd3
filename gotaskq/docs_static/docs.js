// gotaskq API reference: renders the server's own /openapi.json, no build step, no CDN.
//
// The page is served under a strict CSP with Trusted Types 'none': the DOM is built with
// createElement and text nodes only, never from HTML strings. Every operation of the document
// is listed with its summary, authentication, parameters, request body fields and responses;
// the component schemas follow, so every body type a table names can be looked up.
(() => {
  "use strict";

  const METHODS = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];
  const LONG_PATTERN = 60; // longer regexes are left to openapi.json (run_at's is kilobytes)
  const REF_PREFIX = "#/components/";

  let doc = null;

  // -- DOM helpers: text only ---------------------------------------------------------------
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child)); // a string becomes a text node
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);
  const slug = (text) => text.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
  const opId = (method, path) => "op-" + method + "-" + slug(path);
  const schemaId = (name) => "schema-" + slug(name);
  const json = (value) => JSON.stringify(value);

  function table(headers, rows, cls) {
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: cls },
        h("thead", null, h("tr", null, headers.map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", null, rows),
      ),
    );
  }

  // -- schemas --------------------------------------------------------------------------------
  function refName(ref) {
    return ref.startsWith(REF_PREFIX) ? ref.split("/").pop() : ref;
  }

  function lookup(ref) {
    if (!ref.startsWith(REF_PREFIX)) return {};
    let node = doc.components || {};
    for (const part of ref.slice(REF_PREFIX.length).split("/")) node = (node || {})[part];
    return node || {};
  }

  function resolve(schema) {
    let s = schema || {};
    for (let i = 0; i < 20 && s.$ref; i++) s = lookup(s.$ref);
    return s;
  }

  // One object's fields, allOf parts merged (later parts refine earlier ones).
  function objectOf(schema) {
    const s = resolve(schema);
    const out = { properties: {}, required: new Set(s.required || []), closed: s.additionalProperties === false };
    for (const part of s.allOf || []) {
      const inner = objectOf(part);
      for (const [name, prop] of Object.entries(inner.properties)) {
        out.properties[name] = name in out.properties ? { allOf: [out.properties[name], prop] } : prop;
      }
      inner.required.forEach((r) => out.required.add(r));
      out.closed = out.closed || inner.closed;
    }
    Object.assign(out.properties, s.properties || {});
    return out;
  }

  function hasFields(schema) {
    return Object.keys(objectOf(schema).properties).length > 0;
  }

  // The type of a schema as nodes: a component's name is a link to its section below.
  function typeNodes(schema) {
    const s = schema || {};
    if (s.$ref) {
      const name = refName(s.$ref);
      return [h("a", { href: "#" + schemaId(name), class: "type-ref", text: name })];
    }
    if (s.allOf) {
      return joinNodes(
        s.allOf.map((part) =>
          part.$ref || !part.properties ? typeNodes(part) : ["{" + Object.keys(part.properties).join(", ") + "}"],
        ),
        " + ",
      );
    }
    for (const key of ["anyOf", "oneOf"]) {
      if (s[key] && !s.type && !s.properties) return joinNodes(s[key].map(typeNodes), " | ");
    }
    if ("const" in s) return [json(s.const)];
    if (s.enum) return [s.enum.map(json).join(" | ")];
    const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
    if (!types.length) return [s.properties ? "object" : "any JSON"];
    return joinNodes(
      types.map((t) => {
        if (t === "array") return ["array of ", ...typeNodes(s.items)];
        if (t === "string" && s.format) return ["string (" + s.format + ")"];
        if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
          return ["object of ", ...typeNodes(s.additionalProperties)];
        }
        return [t];
      }),
      " | ",
    );
  }

  function joinNodes(parts, sep) {
    const out = [];
    parts.forEach((p, i) => {
      if (i) out.push(sep);
      out.push(...p);
    });
    return out;
  }

  function range(lo, hi, unit) {
    if (lo === undefined && hi === undefined) return null;
    if (hi === undefined) return "≥ " + lo + unit;
    if (lo === undefined) return "≤ " + hi + unit;
    return lo + ".." + hi + unit;
  }

  // Limits, pattern and default of a schema (anyOf branches included), as short text.
  function constraints(schema) {
    const s = resolve(schema);
    const out = [];
    if (s.exclusiveMinimum !== undefined) out.push("> " + s.exclusiveMinimum);
    const numeric = range(s.minimum, s.maximum, "");
    if (numeric) out.push(numeric);
    const length = range(s.minLength, s.maxLength, " chars");
    if (length) out.push(length);
    const items = range(s.minItems, s.maxItems, " items");
    if (items) out.push(items);
    if (s.pattern) out.push(s.pattern.length > LONG_PATTERN ? "pattern: see openapi.json" : "pattern " + s.pattern);
    for (const branch of [...(s.anyOf || []), ...(s.oneOf || [])]) {
      const inner = constraints(branch);
      if (inner.length) out.push(typeNodes(branch).map((n) => (n instanceof Node ? n.textContent : n)).join("") + ": " + inner.join(", "));
    }
    if (s["x-max-seconds-after-now"] !== undefined) out.push("at most " + s["x-max-seconds-after-now"] + " s after now");
    if ("default" in s) out.push("default " + json(s.default));
    return out;
  }

  // Rows of an object's fields; inline objects (also in arrays) are expanded as parent.child.
  function fieldRows(schema, prefix, depth) {
    const obj = objectOf(schema);
    const rows = [];
    for (const [name, prop] of Object.entries(obj.properties)) {
      const full = prefix + name;
      const notes = constraints(prop);
      const desc = resolve(prop).description || prop.description || "";
      rows.push(
        h(
          "tr",
          { dataset: { field: full } },
          h("td", null, h("code", { class: "field depth-" + Math.min(depth, 3), text: full })),
          h("td", { class: "type" }, typeNodes(prop)),
          h("td", { text: obj.required.has(name) ? "yes" : "no" }),
          h("td", null, desc, notes.length ? h("div", { class: "notes", text: notes.join(" · ") }) : null),
        ),
      );
      if (depth < 3 && !prop.$ref) {
        const items = prop.items;
        if (hasFields(prop) && !prop.allOf) rows.push(...fieldRows(prop, full + ".", depth + 1));
        else if (items && !items.$ref && hasFields(items) && !items.allOf) {
          rows.push(...fieldRows(items, full + "[].", depth + 1));
        }
      }
    }
    return rows;
  }

  function fieldsTable(schema) {
    return table(["field", "type", "required", "meaning"], fieldRows(schema, "", 0), "fields");
  }

  function schemaBlock(schema) {
    const s = resolve(schema);
    const parts = [];
    if (hasFields(schema)) {
      parts.push(fieldsTable(schema));
      if (objectOf(schema).closed) parts.push(h("p", { class: "muted small", text: "No other fields are accepted." }));
    } else {
      const notes = constraints(schema);
      parts.push(h("p", null, "Type: ", h("span", { class: "type" }, typeNodes(s)), notes.length ? " (" + notes.join(", ") + ")" : ""));
    }
    if (s.oneOf && s.properties) {
      parts.push(h("p", { class: "muted small", text: "Exactly one of: " + s.oneOf.map((b) => (b.required || []).join(" + ")).join(", ") + "." }));
    }
    return parts;
  }

  // -- operations -----------------------------------------------------------------------------
  function operations() {
    const ops = [];
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        if (item[method]) ops.push({ path, method, op: item[method], shared: item.parameters || [] });
      }
    }
    return ops;
  }

  function authText(op) {
    const security = op.security !== undefined ? op.security : doc.security;
    if (!security || !security.length) return "No token.";
    const schemes = (doc.components && doc.components.securitySchemes) || {};
    const named = security.flatMap((req) => Object.keys(req));
    const optional = security.some((req) => Object.keys(req).length === 0);
    const texts = named.map((n) => "Bearer " + ((schemes[n] && schemes[n].description) || n));
    return texts.join(" or ") + (optional ? " — only when that token is set." : ".");
  }

  function parametersBlock(params) {
    const rows = params.map((raw) => {
      const p = resolve(raw);
      const notes = constraints(p.schema);
      if (p.allowEmptyValue) notes.push("may be empty");
      return h(
        "tr",
        { dataset: { param: p.name } },
        h("td", null, h("code", { text: p.name })),
        h("td", { text: p.in }),
        h("td", { class: "type" }, typeNodes(p.schema)),
        h("td", { text: p.required ? "yes" : "no" }),
        h("td", null, p.description || "", notes.length ? h("div", { class: "notes", text: notes.join(" · ") }) : null),
      );
    });
    return [h("h4", { text: "Parameters" }), table(["name", "in", "type", "required", "meaning"], rows, "params")];
  }

  function bodyBlock(requestBody) {
    const body = resolve(requestBody);
    const out = [];
    for (const [media, content] of Object.entries(body.content || {})) {
      out.push(
        h(
          "p",
          { class: "body-head" },
          h("code", { text: media }),
          " · ",
          body.required ? "required" : "optional",
          " · ",
          h("span", { class: "type" }, typeNodes(content.schema)),
          body.description ? " — " + body.description : "",
        ),
      );
      const desc = resolve(content.schema).description;
      if (desc) out.push(h("p", { class: "muted", text: desc }));
      out.push(...schemaBlock(content.schema));
    }
    return [h("h4", { text: "Request body" }), ...out];
  }

  function responsesBlock(responses) {
    const rows = Object.entries(responses || {}).map(([code, raw]) => {
      const r = resolve(raw);
      const bodies = Object.entries(r.content || {}).map(([media, c]) =>
        h("div", null, h("code", { text: media }), c.schema ? [" ", h("span", { class: "type" }, typeNodes(c.schema))] : null),
      );
      const headers = Object.entries(r.headers || {}).map(([name, hd]) =>
        h("div", { class: "notes" }, "header ", h("code", { text: name }), hd.description ? ": " + hd.description : ""),
      );
      return h(
        "tr",
        { dataset: { status: code } },
        h("td", null, h("code", { class: "status status-" + code.charAt(0), text: code })),
        h("td", null, r.description || "", headers),
        h("td", null, bodies.length ? bodies : "—"),
      );
    });
    return [h("h4", { text: "Responses" }), table(["status", "meaning", "body"], rows, "responses")];
  }

  function operationSection({ path, method, op, shared }) {
    const params = [...shared, ...(op.parameters || [])];
    const label = method.toUpperCase() + " " + path;
    return h(
      "section",
      { class: "op", id: opId(method, path), dataset: { op: label, search: (label + " " + (op.summary || "")).toLowerCase() } },
      h("h3", null, h("span", { class: "method method-" + method, text: method.toUpperCase() }), " ", h("code", { class: "path", text: path })),
      h("p", { class: "summary", text: op.summary || "" }),
      op.description ? h("p", { text: op.description }) : null,
      h("p", { class: "auth small" }, h("strong", { text: "Auth: " }), authText(op)),
      params.length ? parametersBlock(params) : null,
      op.requestBody ? bodyBlock(op.requestBody) : null,
      responsesBlock(op.responses),
    );
  }

  function groups(ops) {
    const byTag = new Map();
    for (const entry of ops) {
      const tag = (entry.op.tags && entry.op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(entry);
    }
    return byTag;
  }

  // -- the page -------------------------------------------------------------------------------
  function render() {
    const info = doc.info || {};
    document.title = (info.title || "API") + " API reference";
    const ops = operations();
    const byTag = groups(ops);
    const schemas = (doc.components && doc.components.schemas) || {};

    const toc = $("toc");
    toc.replaceChildren(
      ...[...byTag].map(([tag, entries]) =>
        h(
          "div",
          { class: "toc-group" },
          h("h2", { text: tag }),
          h(
            "ul",
            null,
            entries.map(({ path, method, op }) =>
              h(
                "li",
                { dataset: { search: (method + " " + path + " " + (op.summary || "")).toLowerCase() } },
                h("a", { href: "#" + opId(method, path) }, h("span", { class: "method method-" + method, text: method.toUpperCase() }), " ", path),
              ),
            ),
          ),
        ),
      ),
      h("div", { class: "toc-group" }, h("h2", { text: "schemas" }), h("ul", null, Object.keys(schemas).map((n) => h("li", null, h("a", { href: "#" + schemaId(n), text: n }))))),
    );

    const main = $("main");
    const content = [
      h("h1", { id: "top" }, (info.title || "API") + " ", h("span", { class: "muted", text: info.version ? "v" + info.version : "" })),
      info.description ? h("p", { text: info.description }) : null,
      h(
        "p",
        { class: "muted small" },
        ops.length + " operations, rendered from ",
        h("a", { href: "openapi.json", text: "openapi.json" }),
        " (OpenAPI " + (doc.openapi || "?") + "). Errors are JSON: ",
        h("code", { text: '{"error": {"code", "message", "fields"}}' }),
        ".",
      ),
      [...byTag].map(([tag, entries]) => h("div", { class: "tag-group" }, h("h2", { class: "tag", text: tag }), entries.map(operationSection))),
      h(
        "div",
        { class: "tag-group" },
        h("h2", { class: "tag", text: "schemas" }),
        Object.keys(schemas).map((name) =>
          h(
            "section",
            { class: "schema", id: schemaId(name), dataset: { schema: name, search: name.toLowerCase() } },
            h("h3", null, h("code", { text: name })),
            schemas[name].description ? h("p", { text: schemas[name].description }) : null,
            schemaBlock({ $ref: REF_PREFIX + "schemas/" + name }),
          ),
        ),
      ),
    ];
    main.replaceChildren(...content.flat(Infinity).filter((n) => n !== null && n !== undefined));
    document.body.dataset.rendered = "1";
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView();
  }

  function applyFilter() {
    const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    const hit = (el) => words.every((w) => el.dataset.search.includes(w));
    document.querySelectorAll("[data-search]").forEach((el) => {
      el.hidden = !hit(el);
    });
  }

  async function main() {
    $("filter-form").addEventListener("submit", (e) => e.preventDefault());
    $("filter").addEventListener("input", applyFilter);
    try {
      const resp = await fetch("openapi.json", { credentials: "omit", headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      doc = await resp.json();
      render();
    } catch (err) {
      $("main").replaceChildren(h("p", { class: "error", text: "Could not load openapi.json: " + err.message }));
      document.body.dataset.rendered = "error";
    }
  }

  main();
})();
