/**
 * The dashboard's single-page app: a header with the pages, the user and logout, and the page
 * the path names (/ui/overview, /ui/targets[/<iqn>], /ui/disks, /ui/sessions). Links are real
 * anchors (keyboard and middle-click work); same-page navigation uses the History API.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { SessionInfo, loadSession, logout } from './api';
import { navigate } from './nav';
import { OverviewPage } from './pages/overview';
import { TargetsPage } from './pages/targets';
import { DisksPage } from './pages/disks';
import { SessionsPage } from './pages/sessions';


const NAV: Array<[string, string]> = [
  ['/ui/overview', 'Overview'],
  ['/ui/targets', 'Targets'],
  ['/ui/disks', 'Disks'],
  ['/ui/sessions', 'Sessions'],
];

function App() {
  const [path, setPath] = useState(location.pathname);
  const [session, setSession] = useState<SessionInfo | undefined>();
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener('popstate', on);
    void loadSession().then(setSession);
    return () => removeEventListener('popstate', on);
  }, []);
  const onNav = (e: MouseEvent, href: string) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(href);
  };
  let page;
  if (path.startsWith('/ui/targets')) page = <TargetsPage path={path} />;
  else if (path.startsWith('/ui/disks')) page = <DisksPage />;
  else if (path.startsWith('/ui/sessions')) page = <SessionsPage />;
  else page = <OverviewPage />;
  return (
    <>
      <header class="top">
        <span class="brand">iSCSI gateway</span>
        <nav aria-label="Pages">
          {NAV.map(([href, label]) => (
            <a href={href} class={path.startsWith(href) ? 'active' : ''} aria-current={path.startsWith(href) ? 'page' : undefined} onClick={(e) => onNav(e, href)}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">{session ? `${session.user} @ ${session.gateway}` : ''}</span>
        <button type="button" class="secondary" onClick={() => void logout()}>Log out</button>
      </header>
      <main id="main">{session ? page : <p>Loading…</p>}</main>
    </>
  );
}

const root = document.getElementById('app') as HTMLElement;
// The static "Loading…" placeholder goes; Preact renders into an empty element.
root.textContent = '';
render(<App />, root);
