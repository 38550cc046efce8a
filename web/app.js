// app.js: the coffre web interface (one ES module, no framework, nothing from another origin).
//
// The browser session lives in the HttpOnly cookie __Host-coffre_session that this script never
// sees; what it keeps (sessionStorage) is the CSRF token the login answered, sent as
// X-CSRF-Token on every call that changes something. Every refusal of the API is shown from
// its problem+json title and detail; a 401 (session ended) leads back to the login page.

const CSRF_KEY = 'coffre.csrf';
const PAGE_SIZE = 20;
const WRITER_ROLES = ['owner', 'admin', 'accountant'];

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, problem) {
    const slug = (problem.type || '').replace('urn:coffre:problem:', '');
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.slug = slug;
    this.title = problem.title || `The server answered ${status}`;
    this.detail = problem.detail || '';
    this.problem = problem;
  }
}

// ---- messages ----

function showError(title, detail) {
  const box = $('error');
  box.replaceChildren();
  const t = document.createElement('strong');
  t.textContent = title;
  box.append(t);
  if (detail) box.append(document.createTextNode(detail));
  box.hidden = false;
}

function clearMessages() {
  $('error').hidden = true;
  $('error').replaceChildren();
  $('notice').textContent = '';
}

function notice(text) {
  $('notice').textContent = text;
}

// ---- the API ----

async function problemOf(status, text) {
  try {
    const p = JSON.parse(text);
    if (p && typeof p === 'object') return p;
  } catch (e) { /* not JSON */ }
  return { title: `The server answered ${status}`, detail: 'The answer was not a problem document.' };
}

function csrfHeaders(method) {
  const t = sessionStorage.getItem(CSRF_KEY);
  return method !== 'GET' && method !== 'HEAD' && t ? { 'X-CSRF-Token': t } : {};
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json', ...csrfHeaders(method) };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: 'No connection to the vault', detail: 'Check the network and try again.' });
  }
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, await problemOf(resp.status, text));
  return text ? JSON.parse(text) : null;
}

// A refused call: a 401 outside the login form means the session ended.
function fail(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionStorage.removeItem(CSRF_KEY);
    show('login');
    showError('Your session has ended', 'Log in again to go on.');
    return;
  }
  if (err instanceof ApiError) showError(err.title, err.detail);
  else showError('Something went wrong in the page', String(err && err.message ? err.message : err));
}

// ---- pages ----

function show(page) {
  for (const p of ['login', 'enrol', 'recovery', 'documents', 'account']) $(`page-${p}`).hidden = p !== page;
  const inApp = page === 'documents' || page === 'account';
  $('logout').hidden = !inApp;
  $('account').hidden = !inApp;
  if (!inApp) $('who').textContent = '';
  const first = $(`page-${page}`).querySelector('input:not([hidden]), button');
  if (first) first.focus();
}

// ---- login ----

async function onLogin(ev) {
  ev.preventDefault();
  clearMessages();
  const body = { email: $('login-email').value.trim(), password: $('login-password').value, cookie: true };
  const totp = $('login-totp').value.trim();
  const recovery = $('login-recovery').value.trim();
  if (!body.email || !body.password) {
    showError('E-mail address and password are needed', '');
    return;
  }
  if (totp) body.totp = totp;
  else if (recovery) body.recovery_code = recovery;
  try {
    const r = await api('POST', '/v1/auth/login', body);
    sessionStorage.setItem(CSRF_KEY, r.csrf_token);
    $('login-form').reset();
    $('login-second').hidden = true;
    await openDocuments();
  } catch (err) {
    if (err instanceof ApiError && err.slug === 'totp-required') {
      $('login-second').hidden = false;
      $('login-totp').focus();
      showError('Second factor required', 'Give the code your authenticator app shows, or a recovery code.');
    } else if (err instanceof ApiError && err.slug === 'totp-enrolment-required' && err.problem.csrf_token) {
      sessionStorage.setItem(CSRF_KEY, err.problem.csrf_token);
      $('login-password').value = '';
      await startEnrolment();
    } else if (err instanceof ApiError) {
      showError(err.title, err.detail);
    } else {
      fail(err);
    }
  }
}

// ---- enrolment of the second factor ----

async function startEnrolment() {
  try {
    const e = await api('POST', '/v1/users/me/totp');
    $('enrol-qr').src = `data:image/png;base64,${e.qr_png_base64}`;
    $('enrol-secret').textContent = e.secret;
    show('enrol');
  } catch (err) {
    fail(err);
  }
}

async function onEnrolConfirm(ev) {
  ev.preventDefault();
  clearMessages();
  try {
    const r = await api('POST', '/v1/users/me/totp/confirm', { code: $('enrol-code').value.trim() });
    // the change of second factor ended the enrol-only session
    sessionStorage.removeItem(CSRF_KEY);
    $('enrol-form').reset();
    $('enrol-secret').textContent = '';
    $('enrol-qr').removeAttribute('src');
    const list = $('recovery-codes');
    list.replaceChildren(...r.recovery_codes.map((c) => {
      const li = document.createElement('li');
      li.textContent = c;
      return li;
    }));
    show('recovery');
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) showError(err.title, err.detail);
    else fail(err);
  }
}

function onRecoveryDownload() {
  const codes = [...$('recovery-codes').children].map((li) => li.textContent);
  const text = `coffre recovery codes (each works once)\n\n${codes.join('\n')}\n`;
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'coffre-recovery-codes.txt';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

function onRecoveryDone() {
  $('recovery-codes').replaceChildren();
  show('login');
  $('login-second').hidden = false;
  notice('The second factor is set up: log in with a code from the app.');
}

// ---- documents ----

let cursors = [null]; // cursors[i]: the cursor of page i
let pageIndex = 0;
let nextCursor = null;
let filters = {};

function listQuery(cursor) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (filters.name) q.set('name', filters.name);
  if (filters.class) q.set('class', filters.class);
  if (filters.after) q.set('created_after', `${filters.after}T00:00:00Z`);
  if (filters.before) q.set('created_before', `${filters.before}T00:00:00Z`);
  if (cursor) q.set('cursor', cursor);
  return `/v1/documents?${q}`;
}

function sizeText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  return td;
}

async function loadPage() {
  const r = await api('GET', listQuery(cursors[pageIndex]));
  const rows = r.documents.map((d) => {
    const tr = document.createElement('tr');
    const a = document.createElement('a');
    a.href = `/v1/documents/${encodeURIComponent(d.id)}/content`;
    a.download = d.name;
    a.textContent = d.name;
    a.title = `Download ${d.name}`;
    tr.append(cell(a), cell(d.class), cell(sizeText(d.size)),
      cell(new Date(d.created_at).toLocaleString()), cell(d.sha256.slice(0, 16) + '…', 'hash'));
    tr.dataset.id = d.id;
    return tr;
  });
  $('documents-body').replaceChildren(...rows);
  nextCursor = r.next_cursor;
  $('page-prev').disabled = pageIndex === 0;
  $('page-next').disabled = !nextCursor;
  const f = Object.values(filters).some(Boolean) ? ', filtered' : '';
  $('documents-caption').textContent =
    `Documents, newest first${f}: page ${pageIndex + 1}, ${rows.length} shown`;
}

async function refresh() {
  try {
    await loadPage();
  } catch (err) {
    fail(err);
  }
}

async function openDocuments() {
  try {
    const me = await api('GET', '/v1/users/me');
    $('who').textContent = `${me.email} (${me.role})`;
    $('upload').hidden = !WRITER_ROLES.includes(me.role);
    cursors = [null];
    pageIndex = 0;
    show('documents');
    await loadPage();
  } catch (err) {
    fail(err);
  }
}

function onFilter(ev) {
  ev.preventDefault();
  clearMessages();
  filters = {
    name: $('filter-name').value,
    class: $('filter-class').value.trim(),
    after: $('filter-after').value,
    before: $('filter-before').value,
  };
  cursors = [null];
  pageIndex = 0;
  refresh();
}

function onFilterClear() {
  $('filter-form').reset();
  onFilter(new Event('submit'));
}

// ---- upload ----

function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// One file: SHA-256 in the browser (WebCrypto), then the upload with its progress.
function uploadOne(file, cls, row) {
  const bar = row.querySelector('progress');
  const status = row.querySelector('.status');
  return file.arrayBuffer()
    .then((data) => crypto.subtle.digest('SHA-256', data).then((h) => [data, hex(h)]))
    .then(([data, sha]) => new Promise((resolve) => {
      const q = new URLSearchParams({ name: file.name });
      if (cls) q.set('class', cls);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `/v1/documents?${q}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.setRequestHeader('X-Content-SHA256', sha);
      for (const [k, v] of Object.entries(csrfHeaders('POST'))) xhr.setRequestHeader(k, v);
      status.textContent = 'Sending…';
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.value = e.total ? e.loaded / e.total : 1;
      };
      xhr.onload = async () => {
        if (xhr.status === 201) {
          bar.value = 1;
          status.textContent = 'Stored';
          row.dataset.state = 'stored';
          resolve(true);
          return;
        }
        const p = await problemOf(xhr.status, xhr.responseText);
        const err = new ApiError(xhr.status, p);
        row.dataset.state = 'refused';
        status.className = 'status bad';
        status.textContent = `Refused: ${err.title}${err.detail ? ` — ${err.detail}` : ''}`;
        if (xhr.status === 401) fail(err);
        else showError(`${file.name}: ${err.title}`, err.detail);
        resolve(false);
      };
      xhr.onerror = () => {
        row.dataset.state = 'failed';
        status.className = 'status bad';
        status.textContent = 'The connection was lost: nothing was stored; upload it again.';
        resolve(false);
      };
      xhr.send(data);
    }));
}

let dropped = null; // files dropped on the drop zone, used instead of the picker's

async function onUpload(ev) {
  ev.preventDefault();
  clearMessages();
  const files = dropped || [...$('upload-files').files];
  dropped = null;
  const cls = $('upload-class').value.trim();
  if (!files.length) {
    showError('No file chosen', 'Choose one or more files to upload.');
    return;
  }
  const list = $('upload-list');
  const rows = files.map((f) => {
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = `${f.name} (${sizeText(f.size)}) `;
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', `Upload of ${f.name}`);
    const status = document.createElement('span');
    status.className = 'status';
    status.textContent = ' Waiting';
    li.append(label, bar, document.createTextNode(' '), status);
    li.dataset.state = 'waiting';
    return li;
  });
  list.replaceChildren(...rows);
  let stored = 0;
  for (let i = 0; i < files.length; i++) {
    try {
      if (await uploadOne(files[i], cls, rows[i])) stored++;
    } catch (err) {
      rows[i].dataset.state = 'failed';
      fail(err);
    }
  }
  $('upload-form').reset();
  notice(`${stored} of ${files.length} files stored.`);
  if (stored) {
    cursors = [null];
    pageIndex = 0;
    await refresh();
  }
}

function onDragOver(ev) {
  ev.preventDefault();
  $('drop-zone').classList.add('over');
}

function onDragLeave() {
  $('drop-zone').classList.remove('over');
}

function onDrop(ev) {
  ev.preventDefault();
  $('drop-zone').classList.remove('over');
  if (!ev.dataTransfer || !ev.dataTransfer.files.length) return;
  dropped = [...ev.dataTransfer.files];
  onUpload(new Event('submit'));
}

// ---- account: password, log out everywhere ----

function loggedOut(message) {
  sessionStorage.removeItem(CSRF_KEY);
  $('documents-body').replaceChildren();
  $('upload-list').replaceChildren();
  show('login');
  notice(message);
}

async function onPassword(ev) {
  ev.preventDefault();
  clearMessages();
  const current = $('password-current').value;
  const next = $('password-new').value;
  if (next !== $('password-again').value) {
    showError('The new passwords differ', 'Type the same new password twice.');
    return;
  }
  try {
    await api('POST', '/v1/users/me/password', { current_password: current, new_password: next });
    $('password-form').reset();
    loggedOut('The password is changed and every session ended: log in with the new one.');
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) showError(err.title, err.detail);
    else fail(err);
  }
}

async function onLogoutAll() {
  clearMessages();
  try {
    await api('POST', '/v1/auth/logout-all');
    loggedOut('Every session of yours has ended.');
  } catch (err) {
    fail(err);
  }
}

// ---- logout ----

async function onLogout() {
  clearMessages();
  try {
    await api('POST', '/v1/auth/logout');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      fail(err);
      return;
    }
  }
  loggedOut('You are logged out.');
}

// ---- start ----

function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('enrol-form').addEventListener('submit', onEnrolConfirm);
  $('recovery-download').addEventListener('click', onRecoveryDownload);
  $('recovery-done').addEventListener('click', onRecoveryDone);
  $('filter-form').addEventListener('submit', onFilter);
  $('filter-clear').addEventListener('click', onFilterClear);
  $('upload-form').addEventListener('submit', onUpload);
  $('logout').addEventListener('click', onLogout);
  $('account').addEventListener('click', () => {
    clearMessages();
    show('account');
  });
  $('account-back').addEventListener('click', () => {
    clearMessages();
    show('documents');
  });
  $('password-form').addEventListener('submit', onPassword);
  $('logout-all').addEventListener('click', onLogoutAll);
  $('drop-zone').addEventListener('dragover', onDragOver);
  $('drop-zone').addEventListener('dragleave', onDragLeave);
  $('drop-zone').addEventListener('drop', onDrop);
  $('page-prev').addEventListener('click', () => {
    if (pageIndex > 0) pageIndex--;
    refresh();
  });
  $('page-next').addEventListener('click', () => {
    if (!nextCursor) return;
    cursors[pageIndex + 1] = nextCursor;
    pageIndex++;
    refresh();
  });
  if (sessionStorage.getItem(CSRF_KEY)) openDocuments();
  else show('login');
}

start();
