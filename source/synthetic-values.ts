/**
 * Value pools and formatting helpers for the synthetic data generator. The pools are chosen to
 * exercise every path a loader can get wrong: characters beyond the BMP, combining marks,
 * right-to-left text, quotes, commas, CR/LF, backslashes and the literal text `\N`.
 */

const NEEDS_QUOTES = /[",\r\n\\]/;

/**
 * A text value as one PostgreSQL CSV field: NULL is the unquoted empty field, the empty string
 * is `""`, and anything with a quote, comma, line break or backslash is quoted.
 */
export function csvField(value: string | null): string {
  if (value === null) return '';
  if (value === '' || NEEDS_QUOTES.test(value)) return `"${value.replace(/"/g, '""')}"`;
  return value;
}

/** A timestamp (milliseconds since the epoch) as ISO 8601 in UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** A date (milliseconds at UTC midnight) as `YYYY-MM-DD`. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A numeric(18,4) value given in ten-thousandths (an exact integer), e.g. 123456 → `12.3456`. */
export function decimal4(tenThousandths: number): string {
  const whole = Math.floor(tenThousandths / 10000);
  const fraction = tenThousandths - whole * 10000;
  return `${whole}.${String(fraction).padStart(4, '0')}`;
}

/** The largest value numeric(18,4) holds. */
export const MAX_MONEY = '99999999999999.9999';

export const ACCOUNT_NAMES: readonly string[] = [
  'Acme Ltd',
  'Zoë’s Café',
  'Müller & Söhne GmbH',
  '東京トラッキング株式会社',
  'Ünïcødé Labs 🚀',
  'Ñandú Media',
  'Αθήνα Affiliates',
  'Москва Маркетинг',
  'مؤسسة الرياض للتسويق',
  'דיגיטל תל אביב',
  '𝔉𝔯𝔞𝔨𝔱𝔲𝔯 Partners',
  '🦄 Unicorn Ads',
  'Smile 😀 Network',
  '𠜎𠜱 Holdings',
  'O\'Reilly "Quotes", Inc.',
  'Zoe\u0308 Combining Co',
];

export const CURRENCIES: readonly string[] = ['EUR', 'USD', 'GBP', 'JPY', 'BRL', 'INR', 'CHF', 'SEK', 'AUD'];

export const TIMEZONES: readonly string[] = [
  'Europe/Paris',
  'Europe/London',
  'America/New_York',
  'America/Los_Angeles',
  'America/St_Johns',
  'America/Sao_Paulo',
  'Asia/Tokyo',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Australia/Adelaide',
  'Pacific/Chatham',
  'UTC',
];

export const PROGRAMME_NAMES: readonly string[] = [
  'Evergreen',
  'Spring Sale 🌸',
  'VIP – Tier 1',
  'Back to school',
  'Black Friday',
  'Kundenwerbung',
  '新規会員キャンペーン',
  'Referral "Plus"',
  'Créateurs, influenceurs',
  'Партнёрская программа',
];

export const FIRST_NAMES: readonly string[] = [
  'Zoë',
  'José',
  'Łukasz',
  'Søren',
  'Siobhán',
  'Nguyễn',
  'Renée',
  'Jürgen',
  'Ольга',
  'أحمد',
  '李',
  'Ahmed',
  'Mary-Jane',
  '🙂 Sam',
  'Chloé',
  '𝓐𝓵𝓮𝔁',
];

export const LAST_NAMES: readonly string[] = [
  'Smith',
  "O'Brien",
  'Müller',
  'García',
  'Kowalski',
  'Ødegaard',
  'van der Berg',
  'Иванова',
  '王',
  'Tanaka 田中',
  'Dubois, Jr.',
  '"The Deals" Doe',
  'Rocket 🚀',
  'Nakamura',
];

export const COUNTRIES: readonly string[] = [
  'FR',
  'DE',
  'US',
  'GB',
  'JP',
  'BR',
  'IN',
  'ES',
  'IT',
  'NL',
  'PL',
  'SE',
  'CA',
  'AU',
  'MX',
  'ZA',
  'NG',
  'KR',
  'AE',
  'CH',
];

export const TRAFFIC_SOURCE_NAMES: readonly string[] = [
  'Newsletter 📧',
  'Instagram',
  'YouTube channel',
  'Blog – reviews',
  'TikTok @deals',
  'Podcast “Deals”',
  'Google Ads, brand',
  'Telegram канал',
  'LINE 公式',
];

export const TRAFFIC_SOURCE_KINDS: readonly string[] = [
  'social',
  'email',
  'search',
  'display',
  'content',
  'podcast',
];

export const SLUG_WORDS: readonly string[] = [
  'spring',
  'shoes',
  'vip',
  'promo',
  'deal',
  'cafe',
  'winter',
  'bundle',
];

export const URL_PATHS: readonly string[] = [
  '/products/running-shoes',
  '/café/crème-brûlée',
  '/straße/ß',
  '/検索/靴',
  '/offer?a=1,b="2"',
  '/landing',
  '/p/🚀-launch',
  '/search?q=a%20b&x=y',
];

export const USER_AGENTS: readonly string[] = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148',
  'Googlebot/2.1 (+http://www.google.com/bot.html)',
  'curl/8.7.1',
  'Mozilla/5.0 "quoted" agent, with comma',
];

export const REFERRERS: readonly string[] = [
  'https://www.google.com/search?q=best+running+shoes',
  'https://www.facebook.com/',
  'https://t.co/AbCdEf',
  'https://news.example.org/a,b,c?x="quoted"',
  'https://blog.example.com/post\r\nX-Injected: header',
  'https://example.com/line\nbreak',
  'C:\\Users\\public\\page.html',
  '\\N',
  'https://example.jp/検索?q=靴',
  'https://duckduckgo.com/?q=caf%C3%A9',
  'android-app://com.google.android.gm/',
  'https://emoji.example/🎉?ref=✓',
];

export const DEVICES: readonly string[] = ['desktop', 'mobile', 'mobile', 'tablet', 'bot'];

/** Metadata documents for links (jsonb): nested objects, arrays, unicode and escapes. */
export const LINK_METADATA: readonly string[] = [
  JSON.stringify({
    campaign: { name: 'spring_sale', tags: ['shoes', 'sale'] },
    utm: { source: 'ig', medium: 'social' },
  }),
  JSON.stringify({ ab: { variant: 'B', weight: 0.5 }, note: 'quote " and , and ✓ 🎉' }),
  JSON.stringify({ placement: { page: 'home', slot: 3, sticky: true }, creative: null }),
  JSON.stringify({ geo: { allow: ['FR', 'BE'], deny: [] }, path: 'C:\\promo\\new', multiline: 'a\nb' }),
  JSON.stringify({ nested: { deep: { deeper: { deepest: [1, 2, { x: '𠜎' }] } } } }),
  JSON.stringify({}),
];
