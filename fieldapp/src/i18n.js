// The app's own texts: Vietnamese first, English, Khmer (km: a draft for review by Khmer-speaking staff,
// like the forms' Khmer column — see forms/xlsforms/translations/).
export const LANGS = [
  { code: 'vi', name: 'Tiếng Việt' },
  { code: 'en', name: 'English' },
  { code: 'km', name: 'ខ្មែរ' },
];

const T = {
  title: { vi: 'Kiểm tra chăm sóc trẻ em', en: 'Child-care checks', km: 'ការត្រួតពិនិត្យការថែទាំកុមារ' },
  sign_in: { vi: 'Đăng nhập', en: 'Sign in', km: 'ចូលគណនី' },
  sign_in_help: {
    vi: 'Đăng nhập một lần khi có mạng. Sau đó ứng dụng dùng được nhiều ngày không cần mạng; mật khẩu không lưu trên điện thoại.',
    en: 'Sign in once while online. The app then works for days without network; the password is not kept on the phone.',
    km: 'ចូលគណនីម្តងពេលមានអ៊ីនធឺណិត។ បន្ទាប់មកកម្មវិធីអាចប្រើបានច្រើនថ្ងៃដោយគ្មានអ៊ីនធឺណិត។ ពាក្យសម្ងាត់មិនត្រូវបានរក្សាទុកក្នុងទូរស័ព្ទទេ។',
  },
  username: { vi: 'Tên đăng nhập', en: 'User name', km: 'ឈ្មោះអ្នកប្រើ' },
  password: { vi: 'Mật khẩu', en: 'Password', km: 'ពាក្យសម្ងាត់' },
  sign_out: { vi: 'Đăng xuất', en: 'Sign out', km: 'ចាកចេញ' },
  need_network: {
    vi: 'Cần có mạng để đăng nhập lần đầu.', en: 'Signing in the first time needs the network.',
    km: 'ការចូលគណនីលើកដំបូងត្រូវការអ៊ីនធឺណិត។',
  },
  forms: { vi: 'Biểu mẫu', en: 'Forms', km: 'ទម្រង់' },
  new_record: { vi: 'Phiếu mới', en: 'New record', km: 'កំណត់ត្រាថ្មី' },
  drafts: { vi: 'Bản nháp', en: 'Drafts', km: 'សេចក្តីព្រាង' },
  finished: { vi: 'Đã hoàn tất', en: 'Finished', km: 'បានបញ្ចប់' },
  none: { vi: 'Chưa có.', en: 'None yet.', km: 'មិនទាន់មាន។' },
  waiting: { vi: 'chờ gửi', en: 'waiting to be sent', km: 'កំពុងរង់ចាំផ្ញើ' },
  sent: { vi: 'đã gửi', en: 'sent', km: 'បានផ្ញើ' },
  refused: { vi: 'máy chủ từ chối', en: 'refused by the server', km: 'ម៉ាស៊ីនមេបដិសេធ' },
  send_now: { vi: 'Gửi ngay', en: 'Send now', km: 'ផ្ញើឥឡូវនេះ' },
  n_waiting: { vi: '{n} phiếu chờ gửi', en: '{n} records waiting', km: 'កំណត់ត្រា {n} កំពុងរង់ចាំ' },
  last_sync: { vi: 'Gửi thành công lần cuối: {t}', en: 'Last successful sync: {t}', km: 'ការផ្ញើជោគជ័យចុងក្រោយ៖ {t}' },
  never: { vi: 'chưa lần nào', en: 'never', km: 'មិនធ្លាប់' },
  last_error: { vi: 'Lỗi gần nhất: {e}', en: 'Last error: {e}', km: 'កំហុសចុងក្រោយ៖ {e}' },
  syncing: { vi: 'Đang gửi…', en: 'Sending…', km: 'កំពុងផ្ញើ…' },
  sync_done: { vi: 'Đã gửi {n} phiếu.', en: 'Sent {n} records.', km: 'បានផ្ញើកំណត់ត្រា {n}។' },
  offline: { vi: 'Không có mạng — phiếu được lưu trên máy và sẽ gửi khi có mạng.', en: 'Offline — records are kept on the phone and sent when the network returns.', km: 'គ្មានអ៊ីនធឺណិត — កំណត់ត្រារក្សាទុកក្នុងទូរស័ព្ទ ហើយនឹងផ្ញើពេលមានអ៊ីនធឺណិតវិញ។' },
  err_network: { vi: 'mất kết nối tới máy chủ; sẽ thử lại', en: 'the connection to the server was lost; will retry', km: 'ការតភ្ជាប់ទៅម៉ាស៊ីនមេបានដាច់ នឹងព្យាយាមម្តងទៀត' },
  err_revoked: { vi: 'phiên đăng nhập trên máy này đã bị thu hồi hoặc tài khoản bị khoá — hãy đăng nhập lại (phiếu vẫn còn trên máy)', en: 'this phone\'s sign-in was revoked or the account disabled — sign in again (records stay on the phone)', km: 'ការចូលគណនីលើទូរស័ព្ទនេះត្រូវបានដកហូត — សូមចូលគណនីម្តងទៀត (កំណត់ត្រានៅតែមានក្នុងទូរស័ព្ទ)' },
  err_storage: { vi: 'bộ nhớ điện thoại đầy — hãy giải phóng dung lượng; phiếu chưa được lưu', en: 'the phone\'s storage is full — free some space; the record was not saved', km: 'ឃ្លាំងផ្ទុកទូរស័ព្ទពេញ — សូមបង្កើតទំហំទំនេរ កំណត់ត្រាមិនទាន់បានរក្សាទុកទេ' },
  err_wrong_login: { vi: 'Sai tên đăng nhập hoặc mật khẩu.', en: 'Wrong user name or password.', km: 'ឈ្មោះអ្នកប្រើ ឬពាក្យសម្ងាត់មិនត្រឹមត្រូវ។' },
  err_server: { vi: 'máy chủ báo lỗi: {e}', en: 'the server answered: {e}', km: 'ម៉ាស៊ីនមេឆ្លើយ៖ {e}' },
  save_draft: { vi: 'Lưu nháp', en: 'Save draft', km: 'រក្សាទុកសេចក្តីព្រាង' },
  finish: { vi: 'Hoàn tất', en: 'Finish', km: 'បញ្ចប់' },
  back: { vi: 'Quay lại', en: 'Back', km: 'ត្រឡប់ក្រោយ' },
  saved_draft: { vi: 'Đã lưu nháp.', en: 'Draft saved.', km: 'បានរក្សាទុកសេចក្តីព្រាង។' },
  finished_ok: { vi: 'Phiếu đã hoàn tất và chờ gửi.', en: 'Record finished; waiting to be sent.', km: 'កំណត់ត្រាបានបញ្ចប់ ហើយកំពុងរង់ចាំផ្ញើ។' },
  invalid: { vi: 'Phiếu còn câu trả lời thiếu hoặc sai (tô đỏ).', en: 'Some answers are missing or wrong (marked in red).', km: 'ចម្លើយខ្លះខ្វះ ឬខុស (សម្គាល់ពណ៌ក្រហម)។' },
  form_gone: { vi: 'Phiên bản biểu mẫu của bản nháp này không còn trên máy; hãy cập nhật biểu mẫu khi có mạng. Bản nháp vẫn được giữ.', en: 'The form version of this draft is no longer on the phone; update forms while online. The draft is kept.', km: 'កំណែទម្រង់នៃសេចក្តីព្រាងនេះលែងមានក្នុងទូរស័ព្ទ។ សេចក្តីព្រាងនៅតែរក្សាទុក។' },
  form_old: { vi: 'Bản nháp dùng phiên bản biểu mẫu cũ; vẫn gửi được.', en: 'This draft uses an older form version; it can still be sent.', km: 'សេចក្តីព្រាងនេះប្រើកំណែទម្រង់ចាស់ តែនៅតែអាចផ្ញើបាន។' },
  no_forms: { vi: 'Chưa tải biểu mẫu. Hãy mở ứng dụng khi có mạng.', en: 'No forms downloaded yet. Open the app while online.', km: 'មិនទាន់ទាញយកទម្រង់។ សូមបើកកម្មវិធីពេលមានអ៊ីនធឺណិត។' },
  storage_ok: { vi: 'Trình duyệt giữ dữ liệu bền vững.', en: 'The browser keeps this app\'s data (persistent storage).', km: 'កម្មវិធីរុករករក្សាទិន្នន័យជាអចិន្ត្រៃយ៍។' },
  storage_no: { vi: 'Trình duyệt KHÔNG hứa giữ dữ liệu: hãy cài ứng dụng vào màn hình chính và gửi phiếu thường xuyên.', en: 'The browser did NOT grant persistent storage: install the app to the home screen and send records often.', km: 'កម្មវិធីរុករកមិនធានារក្សាទិន្នន័យទេ៖ សូមដំឡើងកម្មវិធី ហើយផ្ញើកំណត់ត្រាជាញឹកញាប់។' },
  clock_wrong: { vi: 'Đồng hồ điện thoại lệch {d} ngày so với máy chủ — hãy chỉnh giờ; thời điểm ghi trong phiếu có thể sai.', en: 'The phone\'s clock is {d} days off the server\'s — set the time; times recorded in forms may be wrong.', km: 'នាឡិកាទូរស័ព្ទខុស {d} ថ្ងៃ — សូមកំណត់ម៉ោងឱ្យត្រូវ។' },
  signed_in_as: { vi: 'Đăng nhập: {u} (vùng {a})', en: 'Signed in: {u} (area {a})', km: 'បានចូល៖ {u} (តំបន់ {a})' },
  only_collaborators: { vi: 'Ứng dụng này dành cho cộng tác viên.', en: 'This app is for field collaborators.', km: 'កម្មវិធីនេះសម្រាប់អ្នកសហការនៅមូលដ្ឋាន។' },
  language: { vi: 'Ngôn ngữ', en: 'Language', km: 'ភាសា' },
  edit: { vi: 'Sửa', en: 'Edit', km: 'កែសម្រួល' },
  edited: { vi: 'đã có bản sửa thay thế', en: 'replaced by an edit', km: 'ត្រូវបានជំនួសដោយការកែសម្រួល' },
  draft_of: { vi: 'Nháp lưu {t}', en: 'Draft saved {t}', km: 'សេចក្តីព្រាងរក្សាទុក {t}' },
  // why the server refused a record: by the write rule's code (sync_server/writerule.py), in the app's language
  'refused:overwrite': {
    vi: 'Máy chủ đã có một phiếu khác cùng mã; phiếu không bao giờ bị ghi đè.',
    en: 'The server already has a different record with this id; records are never overwritten.',
    km: 'ម៉ាស៊ីនមេមានកំណត់ត្រាផ្សេងដែលមានលេខសម្គាល់នេះរួចហើយ; កំណត់ត្រាមិនត្រូវបានសរសេរជាន់ទេ។',
  },
  'refused:forged_owner': {
    vi: 'Phiếu ghi người gửi hoặc địa bàn không phải của tài khoản này.',
    en: "The record names a sender or area that is not this account's.",
    km: 'កំណត់ត្រានេះដាក់ឈ្មោះអ្នកផ្ញើ ឬតំបន់ដែលមិនមែនជារបស់គណនីនេះ។',
  },
  'refused:foreign_edit': {
    vi: 'Phiếu này sửa một phiếu không phải của bạn.',
    en: 'This record edits a record that is not yours.',
    km: 'កំណត់ត្រានេះកែកំណត់ត្រាដែលមិនមែនជារបស់អ្នក។',
  },
  'refused:edit_missing': {
    vi: 'Phiếu gốc mà phiếu này sửa không có trên máy chủ.',
    en: 'The record this one edits is not on the server.',
    km: 'កំណត់ត្រាដើមដែលកំណត់ត្រានេះកែ មិនមាននៅលើម៉ាស៊ីនមេទេ។',
  },
  'refused:not_submitter': {
    vi: 'Tài khoản này không được gửi phiếu.',
    en: 'This account does not send records.',
    km: 'គណនីនេះមិនអាចផ្ញើកំណត់ត្រាបានទេ។',
  },
  'refused:bad_doc': {
    vi: 'Phiếu không đúng định dạng nên máy chủ không nhận.',
    en: 'The record is not well-formed, so the server did not take it.',
    km: 'កំណត់ត្រាមិនត្រឹមត្រូវតាមទម្រង់ ដូច្នេះម៉ាស៊ីនមេមិនទទួលទេ។',
  },
  'refused:form_unknown': {
    vi: 'Máy chủ không có biểu mẫu hoặc phiên bản này.',
    en: 'The server does not have this form or this version of it.',
    km: 'ម៉ាស៊ីនមេមិនមានទម្រង់ ឬកំណែនេះទេ។',
  },
  'refused:missing_stub': {
    vi: 'Ảnh hoặc tệp đính kèm của phiếu không được gửi kèm.',
    en: "The record's photos or files were not sent with it.",
    km: 'រូបថត ឬឯកសារភ្ជាប់របស់កំណត់ត្រាមិនត្រូវបានផ្ញើជាមួយទេ។',
  },
};

// A refusal as the phone keeps it ({code, vi, en} from the server's answer; older versions kept a string),
// in the app's language: the rule's own text when the code is known, else the server's words.
export function refusalText(r) {
  if (!r || typeof r !== 'object') return String(r || '');
  if (r.code && T[`refused:${r.code}`]) return t(`refused:${r.code}`);
  return (current === 'vi' && r.vi) || r.en || r.vi || '';
}

let current = 'vi';

export function setLang(code) {
  current = LANGS.some((l) => l.code === code) ? code : 'vi';
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

export function t(key, params = {}) {
  const entry = T[key];
  let s = entry ? entry[current] || entry.vi : key;
  for (const [k, v] of Object.entries(params)) s = s.replace(`{${k}}`, String(v));
  return s;
}
